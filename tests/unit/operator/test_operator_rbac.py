"""operator/rbac.yaml grants exactly what the operator does: derived from the code, not copied.

The application's needs are recorded: every request a reconcile makes (a full Shop, a paused
one, a reconcile after a child changed) is turned into the RBAC verb the API server checks.
kopf's needs come from the resources `main` registers handlers for, plus the framework rules
kopf's documentation lists (docs/deployment-rbac.yaml in kopf): peering, CRD and namespace
discovery for --all-namespaces, and Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml

from microshop_operator import apply, handlers
from microshop_operator import constants as c
from microshop_operator import main as registrations
from microshop_operator.apply import ApiError, KubernetesApi

ROOT = Path(__file__).resolve().parents[3]
RBAC = ROOT / "operator" / "rbac.yaml"
PRODUCTION_SHOP = ROOT / "manifests" / "examples" / "shop.yaml"
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# What kopf itself needs, beyond watching the resources it handles (kopf's deployment RBAC).
FRAMEWORK: set[Grant] = {
    ("kopf.dev", "clusterkopfpeerings", verb) for verb in ("get", "list", "watch", "patch")
} | {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
    ("", "events", "create"),
}


def watched_by_kopf() -> set[Grant]:
    """kopf lists and watches every handled resource, and patches the Shop it handles with
    changing handlers (its finalizer and progress annotations)."""
    grants = {
        (g, plural, verb) for g, _, plural in registrations.WATCHED for verb in ("list", "watch")
    }
    return grants | {(c.GROUP, c.PLURAL, "patch")}


def grants_of(method: str, url: str, content_type: str) -> set[Grant]:
    """The RBAC check(s) the API server makes for one request (discovery needs none)."""
    parts = url.split("?")[0].strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if not rest:
        return set()  # /api/v1, /apis/<group>/<version>: discovery, open to every user
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = "/".join([rest[0], *rest[2:]])
    named = len(rest) > 1
    if method == "GET":
        verbs = {"get"} if named else {"list"}
    elif method == "POST":
        verbs = {"create"}
    elif method == "PATCH" and content_type == "application/apply-patch+yaml":
        verbs = {"patch", "create"}  # an apply that finds nothing creates, and is checked so
    else:
        verbs = {method.lower() if method != "DELETE" else "delete"}
    return {(group, resource, verb) for verb in verbs}


def admitted(url: str, body: Any) -> set[Grant]:
    """What the OwnerReferencesPermissionEnforcement admission plugin (gc_admission.go) checks
    for a write that sets ownerReferences: `delete` on the object itself, and `update` on the
    owner's `<resource>/finalizers` where the reference has blockOwnerDeletion."""
    refs = (
        ((body or {}).get("metadata") or {}).get("ownerReferences")
        if isinstance(body, dict)
        else None
    )
    if not refs:
        return set()
    (group, resource, _), *_ = grants_of("DELETE", url, "application/json")
    checked = {(group, resource.split("/")[0], "delete")}
    for ref in refs:
        if ref.get("blockOwnerDeletion"):
            owner_group = ref["apiVersion"].rpartition("/")[0]
            owner = {(c.API_VERSION, c.KIND): c.PLURAL}[ref["apiVersion"], ref["kind"]]
            checked.add((owner_group, f"{owner}/finalizers", "update"))
    return checked


class RecordingApi(KubernetesApi):
    """Answers like an API server holding one stale child of every kind and, until the
    operator creates them, no Secrets."""

    def __init__(self, shop: dict[str, Any]) -> None:
        super().__init__(
            kopf.ConnectionInfo(server="http://unused.invalid"),
            timeout=aiohttp.ClientTimeout(total=1),
        )
        self.shop = shop
        self.grants: set[Grant] = set()
        self.secrets: dict[str, Any] = {}
        # A grown volume: applying a StatefulSet is refused (immutable claim templates) and
        # its live claims are smaller, so the reconcile expands them and re-creates it.
        self.grown = False

    async def _request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.grants |= grants_of(method, url, content_type) | admitted(url, body)
        parts = url.strip("/").split("/")
        if method == "GET" and len(parts) <= 3:  # discovery: the ServiceMonitor kind is served
            return {"resources": [{"name": plural} for plural in apply.PLURALS.values()]}
        if self.grown and "statefulsets" in parts:
            if method == "PATCH" and content_type == "application/apply-patch+yaml":
                raise ApiError(422, "Invalid", "spec: Forbidden: updates to statefulset spec")
            if method == "GET" and parts[-2] == "statefulsets":
                return grown_statefulset(self.shop, parts[-1])
        selector = (params or {}).get("labelSelector") or ""
        if self.grown and parts[-1] == "persistentvolumeclaims" and "name=" in selector:
            name = dict(kv.split("=") for kv in selector.split(","))["app.kubernetes.io/name"]
            claim = {
                "name": f"data-{self.shop['metadata']['name']}-{name}-0",
                "namespace": "shop-ns",
            }
            return {"items": [{"metadata": claim, "spec": {"resources": {"requests": {
                "storage": "1Mi"}}}}]}  # fmt: skip
        if method == "POST" and parts[-1] == "secrets":
            self.secrets[body["metadata"]["name"]] = {"apiVersion": "v1", "kind": "Secret",
                                                      **copy.deepcopy(body)}  # fmt: skip
            return body  # type: ignore[no-any-return]
        if method == "GET" and parts[-2] == "secrets":
            if parts[-1] in self.secrets:
                return copy.deepcopy(self.secrets[parts[-1]])  # type: ignore[no-any-return]
            raise ApiError(404, "NotFound", "no generated Secret yet")
        if method == "GET" and parts[-1] == self.shop["metadata"]["name"]:
            return copy.deepcopy(self.shop)
        if method == "GET" and parts[-1] in {p for p in apply.PLURALS.values()}:
            stale = {"name": "stale", "namespace": "shop-ns",
                     "ownerReferences": [{"uid": self.shop["metadata"]["uid"]}]}  # fmt: skip
            return {"items": [{"metadata": stale}]}
        if method == "PATCH" and content_type == "application/apply-patch+yaml":
            return {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}
        return {}


def grown_statefulset(shop: dict[str, Any], name: str) -> dict[str, Any]:
    """The live StatefulSet as it was before the Shop's volume grew (1Mi)."""
    from microshop_operator.builders import build_children

    (sts,) = [
        o
        for o in build_children(shop)
        if (o["kind"], o["metadata"]["name"]) == ("StatefulSet", name)
    ]
    sts = copy.deepcopy(sts)
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "1Mi"
    return sts


def record(monkeypatch: pytest.MonkeyPatch) -> RecordingApi:
    """Reconcile the production example (every kind), paused, after a child changed, and with
    the other pvcDeletionPolicy (the existing Secrets' ownerReferences follow it), and with
    its volumes grown."""
    monkeypatch.setattr(kopf, "event", lambda *args, **kwargs: None)
    shop = yaml.safe_load(PRODUCTION_SHOP.read_text())
    shop["metadata"].update(namespace="shop-ns", uid="shop-uid", generation=1)

    logger = logging.getLogger("test")

    async def scenario() -> RecordingApi:
        api = RecordingApi(shop)
        reconciler = handlers.Reconciler(api)
        await reconciler.reconcile(copy.deepcopy(shop), logger)
        paused = copy.deepcopy(shop)
        paused["spec"]["paused"] = True
        await reconciler.reconcile(paused, logger)
        # a child edited by hand: drift, so the Shop is read and reconciled again
        edited = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"edited": "by hand"},
                  "metadata": {"name": f"{shop['metadata']['name']}-gateway-routes",
                               "namespace": "shop-ns"}}  # fmt: skip
        owner = ("shop-ns", shop["metadata"]["name"])
        await reconciler.child_changed(owner, edited, "MODIFIED", logger)
        other = copy.deepcopy(shop)
        other["spec"]["pvcDeletionPolicy"] = (
            "Delete" if shop["spec"].get("pvcDeletionPolicy", "Retain") == "Retain" else "Retain"
        )
        await reconciler.reconcile(other, logger)
        api.grown = True
        with contextlib.suppress(kopf.TemporaryError):
            await reconciler.reconcile(copy.deepcopy(shop), logger)
        await api.close()
        return api

    return asyncio.run(scenario())


def granted() -> set[Grant]:
    documents = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]
    (role,) = [doc for doc in documents if doc["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_grants_exactly_what_the_operator_and_kopf_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = record(monkeypatch)

    assert granted() == api.grants | watched_by_kopf() | FRAMEWORK
    # The recording reached every kind the operator knows (else the derivation would be short).
    assert {resource.split("/")[0] for _, resource, _ in api.grants} == set(apply.PLURALS.values())


def test_rbac_covers_exactly_the_kinds_the_operator_knows() -> None:
    application = {resource for _, resource, _ in granted() - FRAMEWORK}

    assert application == set(apply.PLURALS.values()) | {
        f"{c.PLURAL}/status",
        f"{c.PLURAL}/finalizers",
    }


def test_each_rule_says_whether_the_framework_or_the_application_needs_it() -> None:
    kind_of_rule: dict[str, str] = {}
    said = ""
    for line in RBAC.read_text().splitlines():
        text = line.strip()
        if text.startswith("# Framework"):
            said = "framework"
        elif text.startswith("# Application"):
            said = "application"
        elif text.startswith("resources:"):
            for resource in yaml.safe_load(text)["resources"]:
                kind_of_rule[resource] = said

    framework = {resource for _, resource, _ in FRAMEWORK}
    assert {r for r, said in kind_of_rule.items() if said == "framework"} == framework
    assert {r for r, said in kind_of_rule.items() if said == "application"} == (
        set(apply.PLURALS.values()) | {f"{c.PLURAL}/status", f"{c.PLURAL}/finalizers"}
    )
