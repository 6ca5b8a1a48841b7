"""Day-2 on a real cluster (kind): grow a database, delete and re-create a Shop, roll out a
broken version. Skipped, saying why, where Docker or kind is missing (tests/e2e/conftest.py)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.kind import Cluster, kubectl_binary
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "shop-minimal.yaml"
READY_TIMEOUT = 900


def shop_in(namespace: str, **spec: Any) -> dict[str, Any]:
    shop: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    shop["metadata"] = {"name": "demo", "namespace": namespace}
    shop["spec"] = {**(shop.get("spec") or {}), **spec}
    return shop


def apply(cluster: Cluster, shop: dict[str, Any]) -> None:
    binary = kubectl_binary()
    assert binary is not None
    subprocess.run(
        [binary, "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
        input=json.dumps(shop), text=True, check=True, capture_output=True,
    )  # fmt: skip


def refused(cluster: Cluster, shop: dict[str, Any]) -> str:
    """The API server's refusal of a Shop (its stderr); fails when it is accepted."""
    binary = kubectl_binary()
    assert binary is not None
    result = subprocess.run(
        [binary, "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
        input=json.dumps(shop), text=True, capture_output=True,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    return result.stderr


def conditions(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    shop = json.loads(cluster.kubectl("-n", namespace, "get", "shop", "demo", "-o", "json"))
    return {c["type"]: c for c in (shop.get("status") or {}).get("conditions") or []}


def wait_ready(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "shop/demo",
                    f"--timeout={READY_TIMEOUT}s", timeout=READY_TIMEOUT + 60)  # fmt: skip


def register_and_log_in(http: httpx.Client, email: str, password: str, new: bool) -> None:
    if new:
        created = http.post(
            "/api/v1/users", json={"email": email, "password": password, "name": "Day Two"}
        )
        assert created.status_code == 201, created.text
    token = http.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"


def test_a_grown_database_on_kind_says_what_its_storage_class_allows(
    cluster: Cluster, operator: str
) -> None:
    """kind's `standard` StorageClass (rancher local-path) does not allow volume expansion:
    the Shop says VolumeExpansionNotAllowed naming the field and keeps serving; a shrink is
    refused by the API server naming the field."""
    namespace = f"grow-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, shop_in(namespace, databases={"users": {"managed": {"size": "1Gi"}}}))
    wait_ready(cluster, namespace)

    apply(cluster, shop_in(namespace, databases={"users": {"managed": {"size": "2Gi"}}}))
    degraded = wait_until(
        lambda: (found := conditions(cluster, namespace).get("Degraded", {}))
        .get("reason") == "VolumeExpansionNotAllowed" and found,
        timeout=180, interval=2, what="Degraded=VolumeExpansionNotAllowed",
    )  # fmt: skip
    smaller = shop_in(namespace, databases={"users": {"managed": {"size": "512Mi"}}})
    shrink = refused(cluster, smaller)

    assert "spec.databases.users.managed.size 2Gi" in degraded["message"]
    assert conditions(cluster, namespace)["Ready"]["status"] == "True"
    assert "spec.databases.users.managed.size" in shrink and "may only grow" in shrink
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_a_shop_deleted_and_re_created_logs_in_to_its_retained_data(
    cluster: Cluster, operator: str, port_forward: Any
) -> None:
    """pvcDeletionPolicy Retain keeps the volumes and the generated credentials: the images
    skip their first-boot user setup on retained data, so only the same passwords log in."""
    namespace = f"again-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, shop_in(namespace))
    wait_ready(cluster, namespace)
    email, password = f"again-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    with httpx.Client(base_url=port_forward(namespace, "demo-gateway", 8080), timeout=30) as http:
        register_and_log_in(http, email, password, new=True)
        placed = http.post("/api/v1/orders", json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}],
                                                   "payment_method": "pm_card_visa"},
                           headers={"Idempotency-Key": str(uuid.uuid4())})  # fmt: skip
        assert placed.status_code == 202, placed.text
        order = placed.json()

    cluster.kubectl("-n", namespace, "delete", "shop/demo", "--wait=true", "--timeout=300s")
    apply(cluster, shop_in(namespace))
    wait_ready(cluster, namespace)

    with httpx.Client(base_url=port_forward(namespace, "demo-gateway", 8080), timeout=30) as http:
        register_and_log_in(http, email, password, new=False)
        again = http.get(f"/api/v1/orders/{order['id']}")
    assert again.status_code == 200, again.text
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_a_broken_version_leaves_the_old_pods_serving_and_degrades_at_its_deadline(
    cluster: Cluster, operator: str, port_forward: Any
) -> None:
    """A users image that cannot be pulled: the Shop turns Ready=False while the old pod
    serves, and Degraded=ProgressDeadlineExceeded naming users after the Deployment's
    progressDeadlineSeconds (600, the default)."""
    namespace = f"broken-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, shop_in(namespace))
    wait_ready(cluster, namespace)

    apply(cluster, shop_in(namespace, services={"users": {"version": "0.0.0-does-not-exist"}}))
    wait_until(
        lambda: conditions(cluster, namespace).get("Ready", {}).get("status") == "False",
        timeout=120, interval=2, what="Ready=False",
    )  # fmt: skip
    with httpx.Client(base_url=port_forward(namespace, "demo-gateway", 8080), timeout=30) as http:
        email = f"broken-{uuid.uuid4().hex[:8]}@example.com"
        register_and_log_in(http, email, "correct horse battery", new=True)  # the old pod
    degraded = wait_until(
        lambda: (found := conditions(cluster, namespace).get("Degraded", {}))
        .get("reason") == "ProgressDeadlineExceeded" and found,
        timeout=720, interval=5, what="Degraded=ProgressDeadlineExceeded",
    )  # fmt: skip

    assert degraded["message"].startswith("users: ")
    assert conditions(cluster, namespace)["Ready"]["reason"] == "ProgressDeadlineExceeded"
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
