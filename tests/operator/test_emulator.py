"""The API emulator behaves as the Kubernetes API documentation says, for what kopf and kubectl use.

References: "Kubernetes API Concepts" (api-concepts), "Server-Side Apply", "Finalizers",
"Garbage Collection" and "Custom Resources" pages of the Kubernetes documentation, and the
API conventions (metadata, spec and status).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from apiserver import RunningApi
from emulator.rbac import User, service_account

from tests.support.polling import wait_until

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
                # free-form: a schema that declares nothing prunes everything it is sent
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
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
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


def make_namespace(client: httpx.Client, name: str) -> None:
    create(client, "/api/v1/namespaces", {"metadata": {"name": name}})


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
        make_namespace(client, "a")
        make_namespace(client, "b")
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
    url = "/apis/example.com/v1/namespaces/default/widgets"
    with api.client() as client:
        create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS_CRD)
        created = create(client, url, {"metadata": {"name": "w"}, "spec": {"size": 1},
                                       "status": {"ready": 9}})  # fmt: skip
        client.patch(f"{url}/w", json={"spec": {"size": 2}, "status": {"ready": 5}}, headers=MERGE)
        client.patch(
            f"{url}/w/status", json={"spec": {"size": 7}, "status": {"ready": 2}}, headers=MERGE
        )
        final = client.get(f"{url}/w").json()

    assert "status" not in created
    assert final["spec"]["size"] == 2
    assert final["status"] == {"ready": 2}


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


def owned_configmap(name: str, owner: dict[str, Any], **ref: Any) -> dict[str, Any]:
    meta = owner["metadata"]
    owner_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"],
                 "uid": meta["uid"], **ref}  # fmt: skip
    return {**configmap(name), "metadata": {"name": name, "ownerReferences": [owner_ref]}}


def names_in(client: httpx.Client, url: str) -> set[str]:
    return {i["metadata"]["name"] for i in client.get(url).json()["items"]}


def test_deleting_an_owner_collects_its_dependents_in_the_background(api: RunningApi) -> None:
    """Garbage Collection (pkg/controller/garbagecollector attemptToDeleteItem): after the
    owner goes, dependents whose owners are all gone are deleted, transitively; a dependent
    with another living owner only loses the dangling reference."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        owner = create(client, url, configmap("owner"))
        other = create(client, url, configmap("other"))
        child = create(client, url, owned_configmap("child", owner))
        create(client, url, owned_configmap("grandchild", child))
        shared = owned_configmap("shared", owner)
        shared["metadata"]["ownerReferences"].append(
            owned_configmap("x", other)["metadata"]["ownerReferences"][0]
        )
        create(client, url, shared)

        client.delete(f"{url}/owner")
        wait_until(lambda: names_in(client, url) == {"other", "shared"}, what="the dependents")
        kept = client.get(f"{url}/shared").json()

    assert [r["name"] for r in kept["metadata"]["ownerReferences"]] == ["other"]


def test_orphan_deletion_takes_the_owner_out_of_its_dependents(api: RunningApi) -> None:
    """propagationPolicy Orphan (apiserver registry/store.go deletionFinalizersForGarbageCollection
    adds the `orphan` finalizer; garbagecollector.go orphanDependents removes the owner from each
    dependent's ownerReferences, then the finalizer): the dependents stay, owned by no one."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        owner = create(client, url, configmap("owner"))
        create(client, url, owned_configmap("child", owner, controller=True))

        marked = client.request("DELETE", f"{url}/owner", json={"propagationPolicy": "Orphan"})
        wait_until(lambda: "owner" not in names_in(client, url), what="the owner to go")
        child = client.get(f"{url}/child").json()

    assert marked.json()["metadata"]["finalizers"] == ["orphan"]
    assert "ownerReferences" not in child["metadata"]


def test_foreground_deletion_waits_for_blocking_dependents(api: RunningApi) -> None:
    """propagationPolicy Foreground: the owner keeps a `foregroundDeletion` finalizer until the
    dependents with blockOwnerDeletion are gone (garbagecollector.go
    processDeletingDependentsItem)."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        owner = create(client, url, configmap("owner"))
        child = owned_configmap("child", owner, blockOwnerDeletion=True)
        child["metadata"]["finalizers"] = ["example.com/hold"]
        create(client, url, child)
        client.request("DELETE", f"{url}/owner", json={"propagationPolicy": "Foreground"})
        wait_until(
            lambda: client.get(f"{url}/child").json()["metadata"].get("deletionTimestamp"),
            what="the child to be deleting",
        )
        held = client.get(f"{url}/owner").json()
        client.patch(f"{url}/child", json={"metadata": {"finalizers": None}}, headers=MERGE)
        wait_until(lambda: names_in(client, url) == set(), what="both to go")

    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert held["metadata"]["deletionTimestamp"]


def test_a_namespace_must_exist_and_deleting_it_deletes_its_contents(api: RunningApi) -> None:
    """NamespaceLifecycle admission refuses objects in a missing or terminating namespace; the
    namespace controller (pkg/controller/namespace/deletion) empties a deleted namespace before
    its `kubernetes` finalizer goes."""
    with api.client() as client:
        missing = client.post(CONFIGMAPS.format(ns="nowhere"), json=configmap("cm", "nowhere"))
        make_namespace(client, "doomed")
        create(client, CONFIGMAPS.format(ns="doomed"), configmap("cm", "doomed"))
        create(client, DEPLOYMENTS.format(ns="doomed"), deployment("web", ns="doomed"))
        terminating = client.delete("/api/v1/namespaces/doomed").json()
        wait_until(
            lambda: client.get("/api/v1/namespaces/doomed").status_code == 404,
            what="the namespace to go",
        )
        left = client.get("/api/v1/namespaces/doomed/configmaps").json()["items"]

    assert (
        missing.status_code == 404 and missing.json()["message"] == 'namespaces "nowhere" not found'
    )
    assert terminating["status"]["phase"] == "Terminating"
    assert left == []


def test_a_controller_whose_namespace_goes_is_refused_quietly(api: RunningApi) -> None:
    """NamespaceLifecycle refuses a ReplicaSet the Deployment controller creates in a namespace
    being deleted (403, "because it is being terminated"); the real controller logs it and the
    key goes with the namespace (pkg/controller/deployment handleErr): not an emulator bug."""
    api.emulator.controllers.latency = 0.2  # the controller runs after the namespace is deleted
    try:
        with api.client() as client:
            make_namespace(client, "leaving")
            create(client, DEPLOYMENTS.format(ns="leaving"), deployment("web", ns="leaving"))
            client.delete("/api/v1/namespaces/leaving")
            wait_until(
                lambda: client.get("/api/v1/namespaces/leaving").status_code == 404,
                what="the namespace to go",
                timeout=20,
            )
    finally:
        api.emulator.controllers.latency = 0.0

    assert api.emulator.controller_errors == []


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


# -- what the API server refuses: immutable fields ---------------------------------------------

STATEFULSETS = "/apis/apps/v1/namespaces/{ns}/statefulsets"
SERVICES = "/api/v1/namespaces/{ns}/services"
CLAIMS = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
STORAGE_CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


def statefulset(name: str, size: str = "1Gi") -> dict[str, Any]:
    requests = {"requests": {"storage": size}}
    claim = {"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": requests}}  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "db", "image": "postgres:17"}]},
            },
            "volumeClaimTemplates": [claim],
        },
    }


def test_a_statefulset_update_may_change_only_the_allowlisted_fields(api: RunningApi) -> None:
    """apps/validation/validation.go ValidateStatefulSetUpdate: replicas, ordinals, template,
    updateStrategy, revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and
    minReadySeconds may change; anything else in spec (a claim template's size, the service
    name) is 422 with the real message."""
    url = STATEFULSETS.format(ns="default")
    with api.client() as client:
        create(client, url, statefulset("db"))
        allowed = client.patch(
            f"{url}/db",
            json={"spec": {"replicas": 3, "revisionHistoryLimit": 2, "minReadySeconds": 5,
                           "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}},
            headers=MERGE,
        )  # fmt: skip
        grown = statefulset("db", size="2Gi")["spec"]["volumeClaimTemplates"]
        bigger = client.patch(
            f"{url}/db", json={"spec": {"volumeClaimTemplates": grown}}, headers=MERGE
        )
        renamed = client.patch(f"{url}/db", json={"spec": {"serviceName": "other"}}, headers=MERGE)

    assert allowed.status_code == 200, allowed.text
    for refused in (bigger, renamed):
        assert refused.status_code == 422
        assert refused.json()["reason"] == "Invalid"
        assert refused.json()["message"] == (
            'StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for '
            "fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
            "'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
            "'minReadySeconds' are forbidden"
        )


def test_the_selector_of_a_deployment_is_immutable(api: RunningApi) -> None:
    """apps/validation/validation.go ValidateDeploymentUpdate: ValidateImmutableField on
    spec.selector ("field is immutable", apimachinery api/validation/objectmeta.go)."""
    url = DEPLOYMENTS.format(ns="default")
    with api.client() as client:
        create(client, url, deployment("web"))
        moved = deployment("web")
        moved["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        moved["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        refused = client.put(f"{url}/web", json=moved)

    assert refused.status_code == 422
    assert refused.json()["message"] == (
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: '
        '{"matchLabels":{"app":"other"}}: field is immutable'
    )


def test_a_service_keeps_the_cluster_ip_it_was_given(api: RunningApi) -> None:
    """The service registry allocates spec.clusterIP(s) and keeps them when an update leaves
    them out (pkg/registry/core/service/storage patchAllocatedValues); changing one is
    validateUpgradeDowngradeClusterIPs' "may not change once set" (core/validation)."""
    url = SERVICES.format(ns="default")
    service = {"metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}  # fmt: skip
    with api.client() as client:
        made = create(client, url, service)
        replaced = client.put(f"{url}/web", json={**service, "metadata": made["metadata"]}).json()
        moved = client.patch(f"{url}/web", json={"spec": {"clusterIP": "10.96.9.9"}}, headers=MERGE)

    ip = made["spec"]["clusterIP"]
    assert made["spec"]["clusterIPs"] == [ip] and made["spec"]["ports"][0]["protocol"] == "TCP"
    assert replaced["spec"]["clusterIP"] == ip
    assert moved.status_code == 422
    assert moved.json()["message"] == (
        'Service "web" is invalid: spec.clusterIPs[0]: Invalid value: ["10.96.9.9"]: '
        "may not change once set"
    )


def claim(name: str, size: str, storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}  # fmt: skip
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"metadata": {"name": name}, "spec": spec}


def test_a_bound_claim_may_only_grow_and_only_where_its_class_allows(api: RunningApi) -> None:
    """core/validation ValidatePersistentVolumeClaimUpdate (spec immutable but the storage
    request of a bound claim; never below status.capacity) and the PersistentVolumeClaimResize
    admission (resize/admission.go: growth needs a class with allowVolumeExpansion). The
    emulator's default StorageClass `standard` allows expansion; a test that needs one that
    does not creates its own class (here `fixed`) and names it in the claim."""
    url = CLAIMS.format(ns="default")
    with api.client() as client:
        create(client, STORAGE_CLASSES, {"metadata": {"name": "fixed"},
               "provisioner": "example.com/disk", "allowVolumeExpansion": False})  # fmt: skip
        create(client, url, claim("grows", "1Gi"))
        create(client, url, claim("stuck", "1Gi", "fixed"))
        for name in ("grows", "stuck"):
            wait_until(
                lambda n=name: client.get(f"{url}/{n}").json()["status"]["phase"] == "Bound",
                what=f"{name} to be bound",
            )
        bigger = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
        grown = client.patch(f"{url}/grows", json=bigger, headers=MERGE)
        wait_until(
            lambda: client.get(f"{url}/grows").json()["status"]["capacity"]["storage"] == "2Gi",
            what="the volume to grow",
        )
        smaller = client.patch(
            f"{url}/grows", json={"spec": {"resources": {"requests": {"storage": "1Gi"}}}},
            headers=MERGE,
        )  # fmt: skip
        other_mode = client.patch(f"{url}/grows", json={"spec": {"accessModes": ["ReadWriteMany"]}},
                                  headers=MERGE)  # fmt: skip
        not_expandable = client.patch(f"{url}/stuck", json=bigger, headers=MERGE)

    assert grown.status_code == 200
    assert grown.json()["spec"]["storageClassName"] == "standard"  # DefaultStorageClass admission
    assert smaller.status_code == 422
    assert smaller.json()["message"] == (
        'PersistentVolumeClaim "grows" is invalid: spec.resources.requests.storage: Forbidden: '
        "field can not be less than status.capacity"
    )
    assert other_mode.status_code == 422
    assert other_mode.json()["message"] == (
        'PersistentVolumeClaim "grows" is invalid: spec: Forbidden: spec is immutable after '
        "creation except resources.requests and volumeAttributesClassName for bound claims"
    )
    assert not_expandable.status_code == 403
    assert not_expandable.json()["message"] == (
        'persistentvolumeclaims "stuck" is forbidden: only dynamically provisioned pvc can be '
        "resized and the storageclass that provisions the pvc must support resize"
    )


@pytest.mark.parametrize("kind", ["secrets", "configmaps"])
def test_immutable_secrets_and_configmaps_keep_their_data(api: RunningApi, kind: str) -> None:
    """core/validation ValidateSecretUpdate / ValidateConfigMapUpdate: once `immutable: true`,
    neither the data nor the flag may change."""
    url = f"/api/v1/namespaces/default/{kind}"
    with api.client() as client:
        create(
            client, url, {"metadata": {"name": "frozen"}, "immutable": True, "data": {"k": "dg=="}}
        )
        changed = client.patch(f"{url}/frozen", json={"data": {"k": "eA=="}}, headers=MERGE)
        thawed = client.patch(f"{url}/frozen", json={"immutable": False}, headers=MERGE)
        labelled = client.patch(f"{url}/frozen", json={"metadata": {"labels": {"a": "b"}}},
                                headers=MERGE)  # fmt: skip

    qualified = {"secrets": "Secret", "configmaps": "ConfigMap"}[kind]
    assert changed.status_code == 422
    assert changed.json()["message"] == (
        f'{qualified} "frozen" is invalid: data: Forbidden: field is immutable when '
        "`immutable` is set"
    )
    assert thawed.json()["message"] == (
        f'{qualified} "frozen" is invalid: immutable: Forbidden: field is immutable when '
        "`immutable` is set"
    )
    assert labelled.status_code == 200  # metadata stays editable


def test_built_in_kinds_get_the_defaults_the_real_server_sets(api: RunningApi) -> None:
    """apps/v1 SetDefaults_Deployment and SetDefaults_StatefulSet, core/v1 SetDefaults_PodSpec
    and SetDefaults_Container; a Secret's stringData folded into data (core/v1 conversion)."""
    with api.client() as client:
        bare = deployment("web")
        del bare["spec"]["replicas"]
        made = create(client, DEPLOYMENTS.format(ns="default"), bare)
        database = create(client, STATEFULSETS.format(ns="default"), statefulset("db"))
        secret = create(client, "/api/v1/namespaces/default/secrets",
                        {"metadata": {"name": "s"},
                         "stringData": {"password": "hunter2"}})  # fmt: skip

    spec = made["spec"]
    assert spec["replicas"] == 1 and spec["progressDeadlineSeconds"] == 600
    rolling = {"maxUnavailable": "25%", "maxSurge": "25%"}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": rolling}
    container = spec["template"]["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag means latest
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert database["spec"]["podManagementPolicy"] == "OrderedReady"
    assert database["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain", "whenScaled": "Retain"}  # fmt: skip
    assert secret["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in secret
    assert secret["type"] == "Opaque"


# -- what the API server refuses: custom resources against their CRD ---------------------------

SHOP_CRD = Path(__file__).resolve().parents[2] / "crds" / "shop.yaml"
SHOPS = "/apis/microshop.dev/v1alpha1/namespaces/default/shops"


def shop(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "microshop.dev/v1alpha1", "kind": "Shop",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


@pytest.fixture()
def shops(api: RunningApi) -> RunningApi:
    """The emulator with the project's own Shop CRD (crds/shop.yaml) installed."""
    api.kubectl("apply", "--validate=false", "-f", str(SHOP_CRD))
    return api


def test_a_shop_gets_its_schema_defaults_and_loses_undeclared_fields(shops: RunningApi) -> None:
    """schema/defaulting/algorithm.go Default (a default, then the defaults inside it) and
    schema/pruning/algorithm.go: an undeclared field is dropped, with a Warning under the
    default fieldValidation=Warn and a 400 under Strict (customresource_handler.go)."""
    with shops.client() as client:
        made = client.post(SHOPS, json=shop(services={"users": {"replicas": 2}}, colour="red"))
        strict = client.post(
            SHOPS, json=shop("strict", colour="red"), params={"fieldValidation": "Strict"}
        )

    assert made.status_code == 201, made.text
    spec = made.json()["spec"]
    assert "colour" not in spec
    assert made.headers.get_list("Warning") == ['299 - "unknown field \\"spec.colour\\""']
    assert spec["version"] == "0.1.0"
    assert spec["services"]["users"]["autoscaling"] == {
        "enabled": False, "minReplicas": 1, "maxReplicas": 3,
        "targetCPUUtilizationPercentage": 80}  # fmt: skip
    assert strict.status_code == 400
    assert strict.json()["message"] == 'strict decoding error: unknown field "spec.colour"'


def test_a_shop_against_its_openapi_schema(shops: RunningApi) -> None:
    """pkg/apiserver/validation kubeOpenAPIResultToFieldErrors: bounds, patterns and types are
    422 Invalid with kube-openapi's wording, every error in one Status; CEL rules still run
    after a bound or pattern error but not after a type error (registry/customresource
    strategy.go hasBlockingErr)."""
    with shops.client() as client:
        response = client.post(
            SHOPS,
            json=shop(
                version="not a tag!", services={"users": {"autoscaling": {"maxReplicas": 0}}}
            ),
        )
        typed = client.post(
            SHOPS, json=shop(services={"orders": {"autoscaling": {"enabled": "yes"}}})
        )

    assert response.status_code == 422
    assert response.json()["message"] == (
        'Shop.microshop.dev "demo" is invalid: ['
        "spec.services.users.autoscaling.maxReplicas: Invalid value: 0: "
        "spec.services.users.autoscaling.maxReplicas in body should be greater than or equal to 1, "
        'spec.version: Invalid value: "not a tag!": spec.version in body should match '
        "'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$', "
        "spec.services.users.autoscaling: Invalid value: "
        "autoscaling.minReplicas must not exceed autoscaling.maxReplicas]"
    )
    assert typed.status_code == 422
    assert typed.json()["message"].startswith(
        'Shop.microshop.dev "demo" is invalid: [spec.services.orders.autoscaling.enabled: '
        'Invalid value: "yes": spec.services.orders.autoscaling.enabled in body must be of type '
        'boolean: "string", <nil>: Invalid value: null: some validation rules were not checked'
    )


def test_a_shop_is_refused_by_its_cel_rules_with_their_messages(shops: RunningApi) -> None:
    """schema/cel/validation.go: each x-kubernetes-validations rule runs with `self` at its
    node; a false rule is 422 at that node's path with the rule's message."""
    with shops.client() as client:
        both = client.post(
            SHOPS, json=shop(services={"users": {"replicas": 2, "autoscaling": {"enabled": True}}})
        )
        long_name = client.post(SHOPS, json=shop("a" * 31))

    assert both.status_code == 422
    assert both.json()["message"] == (
        'Shop.microshop.dev "demo" is invalid: spec.services.users: Invalid value: '
        "set either replicas or autoscaling.enabled, not both"
    )
    assert long_name.json()["details"]["causes"][0]["field"] == "<nil>"
    assert "a Shop's name is a DNS label" in long_name.json()["message"]


WIDGET_WITH_RULES: dict[str, Any] = {
    **WIDGETS_CRD,
    "spec": {
        **WIDGETS_CRD["spec"],
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object",
                "properties": {
                    "size": {"type": "string",
                             "x-kubernetes-validations": [
                                 {"rule": "quantity(self).compareTo(quantity(oldSelf)) >= 0",
                                  "message": "size may only grow"}]},
                    "storageClassName": {"type": "string",
                                         "x-kubernetes-validations": [
                                             {"rule": "self == oldSelf",
                                              "message": "storageClassName is immutable"}]},
                    "legacy": {"type": "integer",
                               "x-kubernetes-validations": [{"rule": "self < 10"}]},
                }}}}},
        }],
    },
}  # fmt: skip


def test_transition_rules_compare_an_update_with_the_old_object(api: RunningApi) -> None:
    """schema/cel/validation.go: a rule using `oldSelf` is a transition rule, run only on an
    update (never on create); `quantity()` is Kubernetes' CEL quantity library
    (apiserver/pkg/cel/library/quantity.go); a value that did not change is ratcheted."""
    url = "/apis/example.com/v1/namespaces/default/widgets"
    with api.client() as client:
        create(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_WITH_RULES)
        widget = {"metadata": {"name": "w"}, "spec": {"size": "10Gi", "storageClassName": "fast"}}
        made = client.post(url, json=widget)
        grown = client.patch(f"{url}/w", json={"spec": {"size": "20Gi"}}, headers=MERGE)
        shrunk = client.patch(f"{url}/w", json={"spec": {"size": "1Gi"}}, headers=MERGE)
        moved = client.patch(f"{url}/w", json={"spec": {"storageClassName": "slow"}}, headers=MERGE)

    assert made.status_code == 201 and grown.status_code == 200
    assert shrunk.status_code == 422
    assert shrunk.json()["message"] == (
        'Widget.example.com "w" is invalid: spec.size: Invalid value: "1Gi": size may only grow'
    )
    assert moved.json()["message"] == (
        'Widget.example.com "w" is invalid: spec.storageClassName: Invalid value: "slow": '
        "storageClassName is immutable"
    )
    assert moved.json()["details"]["causes"] == [{
        "reason": "FieldValueInvalid", "field": "spec.storageClassName",
        "message": 'Invalid value: "slow": storageClassName is immutable'}]  # fmt: skip


# -- controllers: what a cluster's control plane reports ----------------------------------------

PODS = "/api/v1/namespaces/default/pods"


def status_of(client: httpx.Client, url: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(url).json().get("status") or {}
    return found


def condition_of(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


def test_a_deployment_rolls_out_with_the_status_fields_the_real_controller_sets(
    api: RunningApi,
) -> None:
    """pkg/controller/deployment: a ReplicaSet per template (`<name>-<pod-template-hash>`),
    pods from it, and status as sync.go calculateStatus and progress.go syncRolloutStatus set
    it; a new template rolls out to a new ReplicaSet while the old one is scaled down."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        create(client, DEPLOYMENTS.format(ns="default"), deployment("web", replicas=2))
        first = wait_until(
            lambda: (
                (s := status_of(client, url)).get("availableReplicas") == 2
                and condition_of(s, "Progressing").get("reason") == "NewReplicaSetAvailable"
                and s
            ),
            what="the first rollout",
        )
        client.patch(url, headers=MERGE, json={"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "x:2"}]}}}})  # fmt: skip
        second = wait_until(
            lambda: (
                (s := status_of(client, url)).get("observedGeneration") == 2
                and s.get("updatedReplicas") == 2
                and s.get("replicas") == 2
                and condition_of(s, "Progressing").get("reason") == "NewReplicaSetAvailable"
                and s
            ),
            what="the second rollout",
        )
        sets = client.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"]
        images = {p["spec"]["containers"][0]["image"] for p in client.get(PODS).json()["items"]}
        rollout = api.kubectl("rollout", "status", "deployment/web", "--timeout=10s")

    assert {k: first[k] for k in ("observedGeneration", "replicas", "updatedReplicas",
                                  "readyReplicas", "availableReplicas")} == {
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
        "availableReplicas": 2}  # fmt: skip
    assert condition_of(first, "Available")["reason"] == "MinimumReplicasAvailable"
    new_set = next(s for s in sets if s["spec"]["replicas"] == 2)["metadata"]["name"]
    assert condition_of(second, "Progressing")["message"] == (
        f'ReplicaSet "{new_set}" has successfully progressed.'
    )
    assert new_set.startswith("web-") and len(sets) == 2
    assert sorted(s["spec"]["replicas"] for s in sets) == [0, 2]
    assert images == {"x:2"}
    assert 'deployment "web" successfully rolled out' in rollout


def test_a_crash_looping_version_times_out_while_the_old_pods_keep_serving(
    api: RunningApi,
) -> None:
    """A new version whose pods never become ready (the test marks its image crash-looping):
    RollingUpdate keeps the old pod (maxUnavailable 25% of 1 is 0), the Deployment reports the
    unavailable new pod, and once progressDeadlineSeconds pass on the emulator's clock without
    progress, Progressing turns False with ProgressDeadlineExceeded (deployment_util.go
    DeploymentTimedOut)."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        create(client, DEPLOYMENTS.format(ns="default"), deployment("web"))
        wait_until(lambda: status_of(client, url).get("availableReplicas") == 1, what="ready")
        api.emulator.crash_loop("x:broken")
        client.patch(url, headers=MERGE, json={"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "x:broken"}]}}}})  # fmt: skip
        stuck = wait_until(
            lambda: (
                (s := status_of(client, url)).get("updatedReplicas") == 1
                and condition_of(s, "Progressing").get("reason") == "ReplicaSetUpdated"
                and s.get("unavailableReplicas") == 1
                and s
            ),
            what="the new pod to be created and not become ready",
        )
        api.emulator.advance(601)
        timed_out = wait_until(
            lambda: (
                condition_of(status_of(client, url), "Progressing").get("reason")
                == "ProgressDeadlineExceeded"
                and status_of(client, url)
            ),
            what="the progress deadline",
        )
        pods = client.get(PODS).json()["items"]

    assert {k: stuck[k] for k in ("replicas", "updatedReplicas", "readyReplicas",
                                  "availableReplicas", "unavailableReplicas")} == {
        "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "unavailableReplicas": 1}  # fmt: skip
    progressing = condition_of(timed_out, "Progressing")
    assert progressing["status"] == "False"
    assert progressing["message"].endswith("has timed out progressing.")
    assert condition_of(timed_out, "Available")["status"] == "True"  # the old pod serves
    by_image = {p["spec"]["containers"][0]["image"]: p for p in pods}
    assert condition_of(by_image["x"]["status"], "Ready")["status"] == "True"
    waiting = by_image["x:broken"]["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff"


def test_a_statefulset_makes_claims_from_its_templates_and_reports_its_revisions(
    api: RunningApi,
) -> None:
    """pkg/controller/statefulset: pods `<set>-<ordinal>` one after the other (OrderedReady), a
    claim `<template>-<set>-<ordinal>` per claim template (stateful_set_utils.go
    getPersistentVolumeClaimName), owned by the set under whenDeleted: Delete; currentRevision
    and updateRevision name the pod template's revision, and a new template rolls the pods
    from the highest ordinal down until the two are equal."""
    url = f"{STATEFULSETS.format(ns='default')}/db"
    body = statefulset("db")
    body["spec"]["replicas"] = 2
    body["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    with api.client() as client:
        made = create(client, STATEFULSETS.format(ns="default"), body)
        first = wait_until(
            lambda: (s := status_of(client, url)).get("readyReplicas") == 2 and s,
            what="both pods",
        )
        claims = client.get(CLAIMS.format(ns="default")).json()["items"]
        client.patch(url, headers=MERGE, json={"spec": {"template": {"spec": {
            "containers": [{"name": "db", "image": "postgres:18"}]}}}})  # fmt: skip
        second = wait_until(
            lambda: (
                (s := status_of(client, url)).get("updatedReplicas") == 2
                and s.get("currentRevision") == s.get("updateRevision")
                and s.get("readyReplicas") == 2
                and s
            ),
            what="the rolling update",
        )

    assert first["currentRevision"] == first["updateRevision"]
    assert first["updateRevision"].startswith("db-")
    assert first["observedGeneration"] == 1 and first["availableReplicas"] == 2
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
    assert all(c["status"]["phase"] == "Bound" for c in claims)
    assert [(r["kind"], r["name"], r["uid"]) for r in claims[0]["metadata"]["ownerReferences"]] == [
        ("StatefulSet", "db", made["metadata"]["uid"])
    ]
    assert second["updateRevision"] != first["updateRevision"]
    assert second["observedGeneration"] == 2


def test_orphaned_pods_survive_their_statefulset_and_a_new_one_adopts_them(
    api: RunningApi,
) -> None:
    """`kubectl delete --cascade=orphan` (propagationPolicy Orphan) takes the set out of its
    pods' ownerReferences and leaves them running; a new set with the same selector adopts them
    (stateful_set.go ClaimPods): how an operator re-creates a StatefulSet to change an
    immutable field without restarting its database."""
    url = f"{STATEFULSETS.format(ns='default')}/db"
    with api.client() as client:
        create(client, STATEFULSETS.format(ns="default"), statefulset("db"))
        wait_until(lambda: status_of(client, url).get("readyReplicas") == 1, what="the pod")
        before = client.get(f"{PODS}/db-0").json()["metadata"]["uid"]
        api.kubectl("delete", "statefulset", "db", "--cascade=orphan")
        orphan = client.get(f"{PODS}/db-0").json()
        create(client, STATEFULSETS.format(ns="default"), statefulset("db", size="2Gi"))
        adopted = wait_until(
            lambda: (
                (p := client.get(f"{PODS}/db-0").json())["metadata"].get("ownerReferences") and p
            ),
            what="the new set to adopt the pod",
        )
        wait_until(lambda: status_of(client, url).get("readyReplicas") == 1, what="ready again")

    assert orphan["metadata"]["uid"] == before and "ownerReferences" not in orphan["metadata"]
    assert adopted["metadata"]["uid"] == before
    assert adopted["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


def test_claims_follow_the_retention_policy_when_their_set_goes(api: RunningApi) -> None:
    """whenDeleted: Retain keeps the claims when the set is deleted; switching to Delete makes
    the controller own them (updateClaimOwnerRefForSetAndPod), so deleting the set then
    collects them (the garbage collector, after the controller has caught up)."""
    url = STATEFULSETS.format(ns="default")
    with api.client() as client:
        create(client, url, statefulset("kept"))
        create(client, url, statefulset("gone"))
        for name in ("kept", "gone"):
            wait_until(
                lambda n=name: status_of(client, f"{url}/{n}").get("readyReplicas") == 1,
                what=f"{name} to be ready",
            )
        delete = {"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}}
        client.patch(f"{url}/gone", headers=MERGE, json=delete)
        wait_until(
            lambda: (
                client.get(f"{CLAIMS.format(ns='default')}/data-gone-0")
                .json()["metadata"]
                .get("ownerReferences")
            ),
            what="the claim to be owned by its set",
        )
        client.delete(f"{url}/kept")
        client.delete(f"{url}/gone")
        wait_until(
            lambda: (
                names_in(client, CLAIMS.format(ns="default")) == {"data-kept-0"}
                and names_in(client, PODS) == set()
            ),
            what="the pods and the owned claim to go",
        )


@pytest.mark.emulator(pods_ready=False)
def test_a_test_says_when_a_workload_s_pods_are_ready(api: RunningApi) -> None:
    """Test support: with `pods_ready=False` pods run but fail readiness until
    `set_ready(namespace, workload)` (a database that has not started answering yet)."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        create(client, DEPLOYMENTS.format(ns="default"), deployment("web"))
        waiting = wait_until(
            lambda: (s := status_of(client, url)).get("replicas") == 1 and s, what="the pod"
        )
        api.emulator.set_ready("default", "web")
        ready = wait_until(
            lambda: (s := status_of(client, url)).get("readyReplicas") == 1 and s, what="ready"
        )

    assert waiting.get("readyReplicas", 0) == 0
    assert condition_of(waiting, "Available")["status"] == "False"
    assert condition_of(ready, "Available")["status"] == "True"
    assert api.emulator.controller_errors == []


def test_kubectl_scale_and_an_autoscaler_write_replicas_through_the_scale_subresource(
    api: RunningApi,
) -> None:
    """The scale subresource (autoscaling/v1 Scale) that `kubectl scale` and the HPA controller
    write; the HPA (podautoscaler horizontal.go, without a metrics server) keeps its target
    within minReplicas and maxReplicas."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    hpa = {"metadata": {"name": "web"},
           "spec": {"scaleTargetRef": target,
                    "minReplicas": 3, "maxReplicas": 5}}  # fmt: skip
    with api.client() as client:
        create(client, DEPLOYMENTS.format(ns="default"), deployment("web"))
        api.kubectl("scale", "deployment", "web", "--replicas=2")
        scaled = client.get(f"{url}/scale").json()
        create(client, "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers", hpa)
        wait_until(lambda: client.get(url).json()["spec"]["replicas"] == 3, what="the HPA")

    assert scaled["kind"] == "Scale" and scaled["spec"]["replicas"] == 2
    assert scaled["status"]["selector"] == "app=web"


def test_every_request_is_logged_with_its_verb_and_user(api: RunningApi) -> None:
    """Test support: `emulator.requests` lists each resource request (method, path, query, user,
    verb, resource, namespace, name, subresource); `requests_served` counts them by verb."""
    url = CONFIGMAPS.format(ns="default")
    with api.client() as client:
        create(client, url, configmap("cm"))
        client.patch(f"{url}/cm", json={"data": {"a": "1"}}, headers=MERGE)
        client.get(url, params={"labelSelector": "a=b"})

    logged = [(r.method, r.verb, r.name, r.query) for r in api.emulator.requests]
    assert logged == [
        ("POST", "create", None, {}),
        ("PATCH", "patch", "cm", {}),
        ("GET", "list", None, {"labelSelector": "a=b"}),
    ]
    assert api.emulator.requests_served["kubernetes-admin", "patch", "/configmaps"] == 1


# -- server-side apply with field ownership ----------------------------------------------------


def applied_deployment(replicas: int | None = 2, **container: Any) -> dict[str, Any]:
    body = deployment("web")
    if replicas is None:
        del body["spec"]["replicas"]
    else:
        body["spec"]["replicas"] = replicas
    body["spec"]["template"]["spec"]["containers"] = [{"name": "app", "image": "x:1", **container}]
    return body


def apply(client: httpx.Client, url: str, body: dict[str, Any], manager: str,
          force: bool = False) -> httpx.Response:  # fmt: skip
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return client.patch(url, json=body, headers=APPLY, params=params)


def managers(body: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
        for e in body["metadata"]["managedFields"]
    }


def test_managed_fields_record_each_manager_s_fields_in_fields_v1(api: RunningApi) -> None:
    """managedfields (structured-merge-diff typed/tofieldset.go): an applier owns exactly the
    fields of its configuration, list items by their keys (containers by name, ports by
    containerPort and protocol); another client's write owns what it changed (Update)."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        apply(client, url, applied_deployment(ports=[{"containerPort": 80}]), "shop-operator")
        client.patch(url, json={"metadata": {"labels": {"team": "a"}}}, headers=MERGE)
        body = client.get(url).json()

    owned = managers(body)
    mine = owned["shop-operator", "Apply", ""]["f:spec"]
    container = mine["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}']
    assert mine["f:replicas"] == {} and mine["f:selector"] == {}  # a LabelSelector is atomic
    assert container["."] == {} and container["f:image"] == {}
    assert container["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {
        ".": {}, "f:containerPort": {}}}  # fmt: skip
    assert "f:terminationMessagePath" not in container  # defaulted, not applied
    assert owned["python-httpx", "Update", ""] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_a_field_its_only_manager_stops_applying_is_removed_then_defaulted(
    api: RunningApi,
) -> None:
    """merge/update.go Updater.prune: what the manager applied before and applies no more, and
    no other manager owns, is removed; the server's defaulting then sets it again (a Deployment
    without replicas gets 1, SetDefaults_Deployment)."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        apply(
            client, url, applied_deployment(3, env=[{"name": "A", "value": "1"}]), "shop-operator"
        )
        after = apply(client, url, applied_deployment(None), "shop-operator").json()

    assert after["spec"]["replicas"] == 1
    assert "env" not in after["spec"]["template"]["spec"]["containers"][0]


def test_a_conflicting_apply_is_409_unless_forced_and_equal_values_are_shared(
    api: RunningApi,
) -> None:
    """merge/update.go Updater.update: a field another manager owns and the apply would change
    is a conflict (409 Conflict, worded by managedfields/internal/conflict.go); the same value
    is shared ownership; force=true takes the field. Here the other manager is `kubectl scale`,
    which writes spec.replicas through the scale subresource (managedfields/scalehandler.go)."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    with api.client() as client:
        apply(client, url, applied_deployment(2), "shop-operator")
        api.kubectl("scale", "deployment", "web", "--replicas=5")
        refused = apply(client, url, applied_deployment(2), "shop-operator")
        shared = apply(client, url, applied_deployment(5), "shop-operator")
        api.kubectl("scale", "deployment", "web", "--replicas=6")
        forced = apply(client, url, applied_deployment(2), "shop-operator", force=True)

    assert refused.status_code == 409 and refused.json()["reason"] == "Conflict"
    assert refused.json()["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
        "using apps/v1: .spec.replicas"
    )
    assert refused.json()["details"]["causes"] == [{
        "reason": "FieldManagerConflict", "field": ".spec.replicas",
        "message": 'conflict with "kubectl" with subresource "scale" using apps/v1'}]  # fmt: skip
    assert shared.status_code == 200
    assert "f:replicas" in managers(shared.json())["shop-operator", "Apply", ""]["f:spec"]
    assert forced.status_code == 200 and forced.json()["spec"]["replicas"] == 2
    assert ("kubectl", "Update", "scale") not in managers(forced.json())


def test_lists_with_merge_keys_are_merged_by_key_between_appliers(api: RunningApi) -> None:
    """typed/merge.go: a `map` list (containers by name, env by name) merges item by item, so
    two appliers each keep their own container, and one may add an env var to the other's
    container without taking the container."""
    url = f"{DEPLOYMENTS.format(ns='default')}/web"
    sidecar = applied_deployment(2)
    sidecar["spec"]["template"]["spec"]["containers"] = [
        {"name": "proxy", "image": "envoy:1"},
        {"name": "app", "env": [{"name": "TRACE", "value": "on"}]},
    ]
    del sidecar["spec"]["replicas"]
    with api.client() as client:
        apply(
            client, url, applied_deployment(2, env=[{"name": "A", "value": "1"}]), "shop-operator"
        )
        merged = apply(client, url, sidecar, "mesh-injector").json()
        again = apply(client, url, applied_deployment(2, env=[{"name": "A", "value": "1"}]),
                      "shop-operator").json()  # fmt: skip

    containers = {c["name"]: c for c in merged["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"app", "proxy"}
    assert containers["app"]["image"] == "x:1"
    assert [e["name"] for e in containers["app"]["env"]] == ["A", "TRACE"]
    assert again["spec"]["template"] == merged["spec"]["template"]  # re-applying keeps both


# -- authorisation by the RBAC objects ---------------------------------------------------------


def as_user(api: RunningApi, user: Any) -> httpx.Client:
    client = api.client()
    client.headers["Authorization"] = f"Bearer {api.emulator.issue_token(user)}"
    return client


def test_a_service_account_may_do_only_what_its_roles_grant(api: RunningApi) -> None:
    """plugin/pkg/auth/authorizer/rbac/rbac.go: the rules of the roles bound to the user (here
    a ServiceAccount, pkg/serviceaccount/util.go), RoleBindings only in their namespace; the
    rest is 403 as responsewriters/errors.go ForbiddenStatusError words it."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
    }
    robot_account = {"kind": "ServiceAccount", "name": "robot", "namespace": "default"}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "reader", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "reader"},
               "subjects": [robot_account]}  # fmt: skip
    robot = service_account("default", "robot")
    with api.client() as admin:
        make_namespace(admin, "elsewhere")
        create(admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", role)
        create(admin, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", binding)
    with as_user(api, robot) as client:
        listed = client.get(CONFIGMAPS.format(ns="default"))
        secrets = client.get("/api/v1/namespaces/default/secrets")
        elsewhere = client.get(CONFIGMAPS.format(ns="elsewhere"))
        everywhere = client.get("/api/v1/configmaps")
        created = client.post(CONFIGMAPS.format(ns="default"), json=configmap("cm"))
        discovery = client.get("/apis")
    with api.client() as client:
        client.headers["Authorization"] = "Bearer not-a-token"
        unknown = client.get(CONFIGMAPS.format(ns="default"))

    assert listed.status_code == 200 and discovery.status_code == 200
    assert secrets.status_code == 403 and secrets.json()["reason"] == "Forbidden"
    assert secrets.json()["message"] == (
        'secrets is forbidden: User "system:serviceaccount:default:robot" cannot list resource '
        '"secrets" in API group "" in the namespace "default"'
    )
    assert elsewhere.status_code == 403
    assert everywhere.json()["message"].endswith(
        'cannot list resource "configmaps" in API group "" at the cluster scope'
    )
    assert created.status_code == 403
    assert unknown.status_code == 401


def test_an_apply_that_creates_is_authorised_as_a_create(api: RunningApi) -> None:
    """apiserver endpoints/handlers/patch.go: the createValidation of an apply that finds no
    object is wrapped in withAuthorization with the `create` verb (update.go)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "patcher"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}],
    }
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "patcher"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "patcher"},
               "subjects": [{"kind": "User", "name": "patcher"}]}  # fmt: skip
    with api.client() as admin:
        create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
        create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        create(admin, CONFIGMAPS.format(ns="default"), configmap("there"))
    with as_user(api, User("patcher", ("system:authenticated",))) as client:
        url = CONFIGMAPS.format(ns="default")
        existing = apply(client, f"{url}/there", configmap("there", a="1"), "patcher")
        missing = apply(client, f"{url}/new", configmap("new"), "patcher")

    assert existing.status_code == 200
    assert missing.status_code == 403
    assert missing.json()["message"] == (
        'configmaps "new" is forbidden: User "patcher" cannot create resource "configmaps" in '
        'API group "" in the namespace "default"'
    )


def test_owner_references_need_delete_on_the_object_and_finalizers_on_the_owner(
    api: RunningApi,
) -> None:
    """OwnerReferencesPermissionEnforcement (plugin/pkg/admission/gc/gc_admission.go): setting
    an ownerReference needs `delete` on the object; `blockOwnerDeletion: true` needs `update`
    on the owner's `<resource>/finalizers`."""
    grants = {"configmaps": ["create", "get"], "secrets": ["create", "delete"]}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "maker"},
        "rules": [{"apiGroups": [""], "resources": [r], "verbs": v} for r, v in grants.items()],
    }
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "maker"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "maker"},
               "subjects": [{"kind": "User", "name": "maker"}]}  # fmt: skip
    with api.client() as admin:
        create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
        create(admin, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        owner = create(admin, CONFIGMAPS.format(ns="default"), configmap("owner"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    with as_user(api, User("maker", ("system:authenticated",))) as client:
        not_deletable = client.post(
            CONFIGMAPS.format(ns="default"),
            json={**configmap("child"), "metadata": {"name": "child", "ownerReferences": [ref]}},
        )
        plain = client.post(
            "/api/v1/namespaces/default/secrets",
            json={"metadata": {"name": "s1", "ownerReferences": [ref]}},
        )
        blocking = client.post("/api/v1/namespaces/default/secrets", json={"metadata": {
            "name": "s2", "ownerReferences": [{**ref, "blockOwnerDeletion": True}]}})  # fmt: skip

    assert not_deletable.status_code == 403
    assert not_deletable.json()["message"] == (
        'configmaps "child" is forbidden: cannot set an ownerRef on a resource you can\'t '
        "delete: , <nil>"
    )
    assert plain.status_code == 201
    assert blocking.status_code == 403
    assert blocking.json()["message"] == (
        'secrets "s2" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers '
        "to a resource you can't set finalizers on: , <nil>"
    )


def test_the_operator_is_held_to_the_rbac_its_chart_renders(api: RunningApi) -> None:
    """The chart rendered by the Helm SDK (tools/manifests.py): its ServiceAccount and the
    ClusterRole bound to it are what the operator's token may do, nothing else."""
    operator = api.install_operator_rbac()
    with api.client() as admin:
        admin.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            json=yaml.safe_load(SHOP_CRD.read_text()),
        )
    with as_user(api, operator) as client:
        shops = client.get("/apis/microshop.dev/v1alpha1/shops")
        pods = client.get("/api/v1/namespaces/default/pods")

    assert operator.name == "system:serviceaccount:microshop-system:microshop-operator"
    assert shops.status_code == 200
    assert pods.status_code == 403
