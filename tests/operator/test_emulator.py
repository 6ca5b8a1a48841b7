"""The API emulator behaves as the Kubernetes API documentation says, for what kopf and kubectl use.

References: "Kubernetes API Concepts" (api-concepts), "Server-Side Apply", "Finalizers",
"Garbage Collection" and "Custom Resources" pages of the Kubernetes documentation, and the
API conventions (metadata, spec and status).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from apiserver import RunningApi

pytestmark = pytest.mark.operator

CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}

WIDGETS_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}


def configmap(name: str, ns: str = "default", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def deployment(name: str, replicas: int = 1, ns: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


def create(client: httpx.Client, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(collection, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_cluster_scoped_list_is_a_typed_list(api: RunningApi) -> None:
    """api-concepts "Collections": a list of a cluster-scoped kind is a versioned `<Kind>List`."""
    body = api.get("/api/v1/namespaces")

    assert body is not None
    assert body["kind"] == "NamespaceList"
    assert body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"]
    assert "default" in {item["metadata"]["name"] for item in body["items"]}


def test_list_across_all_namespaces_and_in_one(api: RunningApi) -> None:
    """api-concepts "Collections": /api/v1/configmaps lists all namespaces; a namespaced URL one."""
    with api.client() as client:
        create(client, CONFIGMAPS.format(ns="a"), configmap("one", "a"))
        create(client, CONFIGMAPS.format(ns="b"), configmap("two", "b"))
        everywhere = client.get("/api/v1/configmaps").json()
        in_a = client.get(CONFIGMAPS.format(ns="a")).json()

    assert everywhere["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["one", "two"]
    assert [i["metadata"]["name"] for i in in_a["items"]] == ["one"]


def test_create_sets_identity_and_generate_name(api: RunningApi) -> None:
    """API conventions "Metadata": the server sets uid, creationTimestamp, generation, and names
    objects from generateName; a second create of the same name is 409 AlreadyExists."""
    with api.client() as client:
        made = create(client, CONFIGMAPS.format(ns="default"), configmap("cm"))
        named = create(
            client,
            "/api/v1/namespaces/default/events",
            {"metadata": {"generateName": "shop-"}, "reason": "Applied", "message": "done"},
        )
        again = client.post(CONFIGMAPS.format(ns="default"), json=configmap("cm"))

    assert made["metadata"]["uid"] and made["metadata"]["creationTimestamp"]
    assert made["metadata"]["generation"] == 1
    assert named["metadata"]["name"].startswith("shop-") and named["kind"] == "Event"
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


def test_resource_version_moves_on_every_write_and_never_on_a_noop(api: RunningApi) -> None:
    """api-concepts "Resource versions": every change gets a new, later resourceVersion; a write
    that changes nothing is not a change."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        first = create(client, url, configmap("cm", a="1"))["metadata"]["resourceVersion"]
        second = client.patch(f"{url}/cm", json={"data": {"a": "2"}}, headers=MERGE).json()
        noop = client.patch(f"{url}/cm", json={"data": {"a": "2"}}, headers=MERGE).json()

    assert int(second["metadata"]["resourceVersion"]) > int(first)
    assert noop["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]


def test_generation_counts_spec_changes_only(api: RunningApi) -> None:
    """API conventions "metadata.generation": bumped on changes to the desired state, not on
    metadata or status changes."""
    url = DEPLOYMENTS.format(ns="default")
    with api.client() as client:
        create(client, url, deployment("web"))
        client.patch(f"{url}/web", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE)
        client.patch(f"{url}/web/status", json={"status": {"readyReplicas": 1}}, headers=MERGE)
        unchanged = client.get(f"{url}/web").json()
        client.patch(f"{url}/web", json={"spec": {"replicas": 3}}, headers=MERGE)
        changed = client.get(f"{url}/web").json()

    assert unchanged["metadata"]["generation"] == 1
    assert changed["metadata"]["generation"] == 2


def test_status_subresource_separates_spec_and_status(api: RunningApi) -> None:
    """Custom resources "Status subresource": the main endpoint ignores status; /status changes
    only status."""
    url = DEPLOYMENTS.format(ns="default")
    with api.client() as client:
        created = create(client, url, {**deployment("web"), "status": {"readyReplicas": 9}})
        client.patch(
            f"{url}/web",
            json={"spec": {"replicas": 2}, "status": {"readyReplicas": 5}},
            headers=MERGE,
        )
        client.patch(
            f"{url}/web/status",
            json={"spec": {"replicas": 7}, "status": {"readyReplicas": 2}},
            headers=MERGE,
        )
        final = client.get(f"{url}/web").json()

    assert "status" not in created
    assert final["spec"]["replicas"] == 2
    assert final["status"] == {"readyReplicas": 2}


def test_watch_resumes_from_a_resource_version_and_ends_after_timeout(api: RunningApi) -> None:
    """api-concepts "Efficient detection of changes": a watch from a resourceVersion streams the
    later changes as ADDED/MODIFIED/DELETED; timeoutSeconds ends the stream."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        since = client.get(url).json()["metadata"]["resourceVersion"]
        create(client, url, configmap("cm", a="1"))
        client.patch(f"{url}/cm", json={"data": {"a": "2"}}, headers=MERGE)
        client.delete(f"{url}/cm")
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
        with client.stream("GET", url, params=params) as stream:
            events = [json.loads(line) for line in stream.iter_lines() if line]

    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["data"] == {"a": "2"}


def test_watch_without_a_version_starts_with_the_current_objects(api: RunningApi) -> None:
    """api-concepts "Semantics for watch": with no resourceVersion, the watch starts with a
    synthetic ADDED event for every existing object."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, configmap("cm"))
        with client.stream("GET", url, params={"watch": "true", "timeoutSeconds": "1"}) as stream:
            events = [json.loads(line) for line in stream.iter_lines() if line]

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "cm")]


@pytest.mark.emulator(watch_history=2)
def test_watch_from_a_forgotten_version_is_gone(api: RunningApi) -> None:
    """api-concepts "410 Gone responses": a watch from a version older than the server keeps is
    answered with an ERROR event of code 410, so the client lists again."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        for name in ("a", "b", "c", "d"):
            create(client, url, configmap(name))
        with client.stream("GET", url, params={"watch": "true", "resourceVersion": "1"}) as stream:
            events = [json.loads(line) for line in stream.iter_lines() if line]

    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


def test_merge_patch_merges_maps_and_null_deletes(api: RunningApi) -> None:
    """RFC 7386, as the API applies application/merge-patch+json."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, configmap("cm", a="1", b="2"))
        patched = client.patch(
            f"{url}/cm", json={"data": {"a": None, "c": "3"}}, headers=MERGE
        ).json()

    assert patched["data"] == {"b": "2", "c": "3"}


def test_json_patch_with_a_failed_test_is_refused(api: RunningApi) -> None:
    """RFC 6902 (application/json-patch+json): a failed `test` op rejects the whole patch; kopf
    guards its finalizer changes with a test on resourceVersion."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        made = create(client, url, configmap("cm"))
        version = made["metadata"]["resourceVersion"]
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x"]},
        ]
        applied = client.patch(f"{url}/cm", content=json.dumps(ops), headers=JSON_PATCH)
        stale = client.patch(f"{url}/cm", content=json.dumps(ops), headers=JSON_PATCH)

    assert applied.json()["metadata"]["finalizers"] == ["x"]
    assert stale.status_code == 422


def test_server_side_apply_creates_updates_and_drops_what_the_manager_stopped_applying(
    api: RunningApi,
) -> None:
    """Server-Side Apply: apply creates when absent, sets the fields given, keeps other managers'
    fields, removes fields this manager no longer applies, and re-applying changes nothing."""
    url = f"{CONFIGMAPS.format(ns='default')}/cm"
    params = {"fieldManager": "me", "force": "true"}
    with api.client() as client:
        client.patch(url, json=configmap("cm", a="1", b="2"), headers=APPLY, params=params)
        client.patch(url, json={"data": {"other": "kept"}}, headers=MERGE)
        applied = client.patch(
            url, json=configmap("cm", a="3"), headers=APPLY, params=params
        ).json()
        again = client.patch(url, json=configmap("cm", a="3"), headers=APPLY, params=params).json()

    assert applied["data"] == {"a": "3", "other": "kept"}
    assert again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]


def test_write_with_a_stale_resource_version_conflicts(api: RunningApi) -> None:
    """api-concepts "Concurrency control": an update naming an old resourceVersion is 409."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        old = create(client, url, configmap("cm", a="1"))
        client.patch(f"{url}/cm", json={"data": {"a": "2"}}, headers=MERGE)
        stale = client.put(f"{url}/cm", json={**old, "data": {"a": "3"}})

    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"


def test_finalizers_hold_deletion_until_removed(api: RunningApi) -> None:
    """Finalizers: deleting an object with finalizers only sets deletionTimestamp; removing the
    last finalizer deletes it."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, {**configmap("cm"), "metadata": {"name": "cm", "finalizers": ["keep"]}})
        client.delete(f"{url}/cm")
        marked = client.get(f"{url}/cm").json()
        client.patch(f"{url}/cm", json={"metadata": {"finalizers": None}}, headers=MERGE)
        gone = client.get(f"{url}/cm")

    assert marked["metadata"]["deletionTimestamp"]
    assert gone.status_code == 404


def test_deleting_an_owner_collects_its_dependents(api: RunningApi) -> None:
    """Garbage Collection: dependents whose ownerReferences name a deleted owner are deleted
    (background propagation), transitively; propagationPolicy=Orphan leaves them."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        owner = create(client, url, configmap("owner"))
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "owner",
            "uid": owner["metadata"]["uid"],
        }
        child = create(
            client,
            url,
            {**configmap("child"), "metadata": {"name": "child", "ownerReferences": [ref]}},
        )
        grandchild_ref = {**ref, "name": "child", "uid": child["metadata"]["uid"]}
        create(
            client,
            url,
            {**configmap("gc"), "metadata": {"name": "gc", "ownerReferences": [grandchild_ref]}},
        )
        loner = create(client, url, configmap("loner"))
        kept_ref = {**ref, "name": "loner", "uid": loner["metadata"]["uid"]}
        create(
            client,
            url,
            {**configmap("kept"), "metadata": {"name": "kept", "ownerReferences": [kept_ref]}},
        )

        client.delete(f"{url}/owner")
        client.request("DELETE", f"{url}/loner", json={"propagationPolicy": "Orphan"})
        names = {i["metadata"]["name"] for i in client.get(url).json()["items"]}

    assert names == {"kept"}


def test_creating_a_crd_serves_its_resource(api: RunningApi) -> None:
    """Custom Resources: once a CRD is created (and Established) its kind is served and
    discoverable, with its status subresource."""
    with api.client() as client:
        crd = create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS_CRD)
        discovery = client.get("/apis/example.com/v1").json()
        create(
            client, "/apis/example.com/v1/namespaces/default/widgets", {"metadata": {"name": "w"}}
        )
        widgets = client.get("/apis/example.com/v1/widgets").json()

    assert {"type": "Established", "status": "True"}.items() <= crd["status"]["conditions"][
        1
    ].items()
    assert {r["name"] for r in discovery["resources"]} == {"widgets", "widgets/status"}
    assert widgets["kind"] == "WidgetList" and widgets["apiVersion"] == "example.com/v1"
    assert widgets["items"][0]["kind"] == "Widget"


def labelled(name: str, **labels: str) -> dict[str, Any]:
    return {**configmap(name), "metadata": {"name": name, "labels": labels}}


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=shop", ["cart", "db"]),
        ("app==shop,tier!=db", ["cart"]),
        ("tier in (db, cache)", ["db", "redis"]),
        ("tier notin (db)", ["cart", "loner", "redis"]),  # notin also matches a missing label
        ("tier", ["db", "redis"]),
        ("!tier", ["cart", "loner"]),
        ("app=shop,!tier", ["cart"]),
        ("", ["cart", "db", "loner", "redis"]),
    ],
)
def test_label_selectors_are_equality_and_set_based(
    api: RunningApi, selector: str, names: list[str]
) -> None:
    """labels/selector.go (Parser.parse, Requirement.Matches): `=`/`==`/`!=`, `in`, `notin`
    (true for objects without the key), `key` and `!key`, comma-joined and all required."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, labelled("cart", app="shop"))
        create(client, url, labelled("db", app="shop", tier="db"))
        create(client, url, labelled("redis", app="cache", tier="cache"))
        create(client, url, labelled("loner"))
        listed = client.get(url, params={"labelSelector": selector}).json()

    assert [i["metadata"]["name"] for i in listed["items"]] == names


def test_a_selector_that_does_not_parse_is_a_bad_request(api: RunningApi) -> None:
    """labels/selector.go Parser: an unparsable selector is refused (400), not ignored."""
    with api.client() as client:
        response = client.get(CONFIGMAPS.format(ns="default"), params={"labelSelector": "a in b"})

    assert response.status_code == 400
    assert response.json()["message"] == "unable to parse requirement: found 'b' expected: '('"


def test_watches_filter_by_label_on_the_server_and_the_selectors_are_recorded(
    api: RunningApi,
) -> None:
    """api-concepts "Watches" with a labelSelector: only matching changes are sent; the emulator
    records every list and watch with its selectors, so a test can tell a label-filtered watch
    (issue 9 defect 9) from a cluster-wide one."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        since = client.get(url).json()["metadata"]["resourceVersion"]
        create(client, url, labelled("mine", owner="me"))
        create(client, url, labelled("theirs", owner="them"))
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1",
                  "labelSelector": "owner in (me)"}  # fmt: skip
        with client.stream("GET", "/api/v1/configmaps", params=params) as stream:
            events = [json.loads(line) for line in stream.iter_lines() if line]

    assert [e["object"]["metadata"]["name"] for e in events] == ["mine"]
    watches = [s for s in api.emulator.selectors_for("configmaps") if s.verb == "watch"]
    assert [(w.namespace, w.label_selector) for w in watches] == [(None, "owner in (me)")]
    lists = [s for s in api.emulator.selectors_for("configmaps") if s.verb == "list"]
    assert [(s.namespace, s.label_selector) for s in lists] == [("default", "")]


def test_field_selectors_pick_by_name_and_namespace(api: RunningApi) -> None:
    """api-concepts "Field selectors": every kind supports metadata.name and metadata.namespace."""
    with api.client() as client:
        create(client, CONFIGMAPS.format(ns="default"), configmap("a"))
        create(client, CONFIGMAPS.format(ns="default"), configmap("b"))
        by_name = client.get(
            CONFIGMAPS.format(ns="default"), params={"fieldSelector": "metadata.name=b"}
        ).json()
        unsupported = client.get(
            CONFIGMAPS.format(ns="default"), params={"fieldSelector": "data.x=1"}
        )

    assert [i["metadata"]["name"] for i in by_name["items"]] == ["b"]
    assert unsupported.status_code == 400


def test_protobuf_bodies_are_refused_with_415(api: RunningApi) -> None:
    """api-concepts "Alternate representations": a server may refuse a content type with 415."""
    with api.client() as client:
        response = client.post(
            CONFIGMAPS.format(ns="default"),
            content=b"\x6b\x38\x73\x00",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )

    assert response.status_code == 415


def test_kubectl_applies_gets_waits_and_deletes(api: RunningApi) -> None:
    """The real kubectl: apply a CRD and a custom object, list it, wait for its condition."""
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(WIDGETS_CRD))
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    api.kubectl("apply", "--server-side", "--validate=false", "-f", "-", input=json.dumps(widget))
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    api.kubectl(
        "patch", "widget", "w", "--subresource=status", "--type=merge", "-p", json.dumps(ready)
    )

    listed = api.kubectl("get", "wd", "-o", "name")
    waited = api.kubectl("wait", "--for=condition=Ready", "widget/w", "--timeout=10s")
    api.kubectl("delete", "widget", "w")

    assert listed.strip() == "widget.example.com/w"
    assert "condition met" in waited
    assert api.get("/apis/example.com/v1/namespaces/default/widgets/w") is None


def test_an_injected_fault_answers_matching_requests_then_wears_off(api: RunningApi) -> None:
    """Test support, not Kubernetes: `fail` makes matching requests answer an error Status."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, configmap("a", x="1"))
        api.emulator.fail("PATCH", f"{url}/*", 500, times=2)

        untouched = client.get(f"{url}/a")  # a GET does not match the PATCH fault
        answers = [
            client.patch(f"{url}/a", json={"data": {"x": "2"}}, headers=MERGE) for _ in range(3)
        ]

        api.emulator.fail("GET", f"{url}/*", 503, times=None)
        refused = [client.get(f"{url}/a").status_code for _ in range(3)]
        api.emulator.clear_faults()
        cleared = client.get(f"{url}/a")

    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json()["kind"] == "Status" and answers[0].json()["reason"] == "InternalError"
    assert answers[2].json()["data"] == {"x": "2"}
    assert untouched.status_code == 200
    assert refused == [503, 503, 503]
    assert cleared.status_code == 200
