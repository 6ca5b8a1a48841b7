"""A managed database's or the bus's volume after its Shop is created: grow it, never shrink or
re-class it, and say so where the StorageClass cannot grow it (issue 9 defect 1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver import KUBECTL, RunningApi
from test_operator import (
    Operator,
    all_applied,
    apply_shop,
    condition,
    mark_workloads_ready,
    running_operator,
    shop_manifest,
    wait_for_condition,
)

from tests.support.polling import wait_until

pytestmark = pytest.mark.operator

STATEFULSETS = "/apis/apps/v1/namespaces/{ns}/statefulsets"
CLAIMS = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
PODS = "/api/v1/namespaces/{ns}/pods"


@pytest.fixture(scope="module")
def operator(
    module_api: RunningApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    with running_operator(module_api, tmp_path_factory.mktemp("operator")) as running:
        yield running


def sized(namespace: str, size: str, **managed: Any) -> dict[str, Any]:
    return shop_manifest(namespace, databases={"users": {"managed": {"size": size, **managed}}})


def get(api: RunningApi, collection: str, namespace: str, name: str) -> dict[str, Any]:
    return api.get(f"{collection.format(ns=namespace)}/{name}") or {}


def requested(claim: dict[str, Any]) -> str | None:
    return ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")


def test_growing_a_database_expands_its_volume_and_keeps_its_pod(
    operator: Operator, namespace: str
) -> None:
    """StatefulSet volumeClaimTemplates are immutable (apps/validation ValidateStatefulSetUpdate
    allows only replicas, ordinals, template, updateStrategy, revisionHistoryLimit,
    persistentVolumeClaimRetentionPolicy and minReadySeconds): the claims are expanded (a
    claim's storage request may grow, PersistentVolumeClaimResize admission) and the
    StatefulSet is deleted with propagationPolicy Orphan and re-created, adopting the running
    pod (the RabbitMQ cluster-operator's approach); Progressing says ResizingVolumes while
    it happens."""
    api = operator.api
    shop = sized(namespace, "1Gi")
    apply_shop(api, shop)
    wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")
    mark_workloads_ready(api, shop)
    wait_for_condition(api, shop, "Ready", status="True")
    claim = wait_until(
        lambda: get(api, CLAIMS, namespace, "data-demo-users-db-0"), what="the claim", timeout=15
    )
    pod_uid = get(api, PODS, namespace, "demo-users-db-0")["metadata"]["uid"]
    set_uid = get(api, STATEFULSETS, namespace, "demo-users-db")["metadata"]["uid"]
    assert requested(claim) == "1Gi"
    # Another controller's finalizer holds the old StatefulSet's deletion for a while, so the
    # condition can be seen while the StatefulSet is being re-created.
    hold = json.dumps({"metadata": {"finalizers": ["example.com/hold"]}})
    api.kubectl("patch", "statefulset", "demo-users-db", "-n", namespace, "--type=merge",
                "-p", hold)  # fmt: skip

    grown = sized(namespace, "2Gi")
    apply_shop(api, grown)
    resizing = wait_for_condition(api, grown, "Progressing", reason="ResizingVolumes")
    held = get(api, PODS, namespace, "demo-users-db-0")
    api.kubectl("patch", "statefulset", "demo-users-db", "-n", namespace, "--type=merge",
                "-p", json.dumps({"metadata": {"finalizers": None}}))  # fmt: skip
    recreated = wait_until(
        lambda: (
            (sts := get(api, STATEFULSETS, namespace, "demo-users-db"))
            and sts["metadata"]["uid"] != set_uid
            and sts
        ),
        what="the StatefulSet to be re-created",
        timeout=30,
    )
    wait_for_condition(api, grown, "Ready", status="True", observedGeneration=2, timeout=30)

    claim = get(api, CLAIMS, namespace, "data-demo-users-db-0")
    assert requested(claim) == "2Gi"
    assert claim["status"]["capacity"]["storage"] == "2Gi"
    template = recreated["spec"]["volumeClaimTemplates"][0]
    assert template["spec"]["resources"]["requests"]["storage"] == "2Gi"
    # The pod ran on through it: adopted by the new StatefulSet, never restarted.
    pod = get(api, PODS, namespace, "demo-users-db-0")
    assert pod["metadata"]["uid"] == pod_uid
    assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [recreated["metadata"]["uid"]]
    assert resizing["status"] == "True"
    assert resizing["message"].startswith("users-db: ")
    assert held["metadata"]["uid"] == pod_uid  # serving while the StatefulSet was away
    assert condition(api, grown, "Degraded")["status"] == "False"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"size": "512Mi"}, "spec.databases.users.managed.size", "size may only grow"),
        ({"size": "1Gi", "storageClassName": "other"}, "spec.databases.users.managed",
         "storageClassName cannot change"),
    ],
)  # fmt: skip
def test_shrinking_or_reclassing_a_volume_is_refused_naming_the_field(
    operator: Operator, namespace: str, change: dict[str, str], field: str, words: str
) -> None:
    """CRD transition rules on oldSelf (apiextensions-apiserver's CEL validation runs them on
    update only): the API server refuses the edit, naming the field."""
    api = operator.api
    apply_shop(api, sized(namespace, "1Gi"))
    refused = subprocess.run(
        [str(KUBECTL), f"--kubeconfig={api.kubeconfig}", "apply", "--server-side",
         "--validate=false", "-f", "-"],
        input=json.dumps(sized(namespace, **change)), capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0
    assert field in refused.stderr and words in refused.stderr, refused.stderr
    body = api.get(f"/apis/microshop.dev/v1alpha1/namespaces/{namespace}/shops/demo") or {}
    assert body["spec"]["databases"]["users"]["managed"]["size"] == "1Gi"


def test_a_storage_class_that_cannot_expand_is_named_in_the_status(
    operator: Operator, namespace: str
) -> None:
    """PersistentVolumeClaimResize admission refuses to grow a claim whose StorageClass does not
    set allowVolumeExpansion: the Shop is Degraded with VolumeExpansionNotAllowed, the
    StatefulSet is left as it was and the shop keeps running."""
    api = operator.api
    fixed = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": f"fixed-{namespace}"}, "allowVolumeExpansion": False,
             "provisioner": "emulator.microshop.dev/hostpath"}  # fmt: skip
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(fixed))
    try:
        shop = sized(namespace, "1Gi", storageClassName=f"fixed-{namespace}")
        apply_shop(api, shop)
        wait_until(lambda: all_applied(api, shop), timeout=30, what="every child")
        wait_until(
            lambda: (get(api, CLAIMS, namespace, "data-demo-users-db-0").get("status") or {})
            .get("phase") == "Bound",
            what="the claim to be bound", timeout=15,
        )  # fmt: skip
        set_uid = get(api, STATEFULSETS, namespace, "demo-users-db")["metadata"]["uid"]

        grown = sized(namespace, "2Gi", storageClassName=f"fixed-{namespace}")
        apply_shop(api, grown)
        degraded = wait_for_condition(
            api, grown, "Degraded", status="True", reason="VolumeExpansionNotAllowed"
        )
    finally:
        api.kubectl("delete", "storageclass", f"fixed-{namespace}")

    assert degraded["message"].startswith("users-db: spec.databases.users.managed.size 2Gi: ")
    assert "must support resize" in degraded["message"]
    assert get(api, STATEFULSETS, namespace, "demo-users-db")["metadata"]["uid"] == set_uid
    assert requested(get(api, CLAIMS, namespace, "data-demo-users-db-0")) == "1Gi"
