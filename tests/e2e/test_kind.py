"""A Shop on a real cluster: install, Ready, a paid and a declined order, then deletion."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.kind import SHOP_NAMESPACE, Cluster
from tests.support.polling import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "shop-minimal.yaml"
FINAL = {"PAID", "PAYMENT_FAILED"}


def place_order(http: httpx.Client, payment_method: str, items: list[dict]) -> dict[str, Any]:
    response = http.post(
        "/api/v1/orders",
        json={"items": items, "payment_method": payment_method},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text
    order: dict[str, Any] = response.json()
    assert order["status"] == "PENDING"
    return order


def settled(http: httpx.Client, order_id: str) -> dict[str, Any] | None:
    current: dict[str, Any] = http.get(f"/api/v1/orders/{order_id}").json()
    return current if current["status"] in FINAL else None


def test_a_shop_takes_orders_on_kind(cluster: Cluster, operator: str, port_forward: Any) -> None:
    shop = yaml.safe_load(EXAMPLE.read_text())
    name = shop["metadata"]["name"]
    cluster.kubectl("create", "namespace", SHOP_NAMESPACE)

    cluster.kubectl("--namespace", SHOP_NAMESPACE, "apply", "-f", str(EXAMPLE))
    cluster.kubectl("--namespace", SHOP_NAMESPACE, "wait", "--for=condition=Ready",
                    f"shop/{name}", "--timeout=900s", timeout=960)  # fmt: skip
    assert name in cluster.kubectl("--namespace", SHOP_NAMESPACE, "get", "shops")

    base_url = port_forward(SHOP_NAMESPACE, f"{name}-gateway", 8080)
    with httpx.Client(base_url=base_url, timeout=30) as http:
        email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
        password = "correct horse battery"
        registered = http.post(
            "/api/v1/users", json={"email": email, "password": password, "name": "E2E"}
        )
        assert registered.status_code == 201, registered.text
        token = http.post("/api/v1/auth/token", data={"username": email, "password": password})
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

        paid = place_order(http, "pm_card_visa", [{"sku": "MUG-CLASSIC", "quantity": 1}])
        declined = place_order(
            http, "pm_card_chargeDeclined", [{"sku": "HOODIE-GREY", "quantity": 1}]
        )

        paid = wait_until(
            lambda: settled(http, paid["id"]),
            timeout=120,
            interval=1,
            what="the paid order to settle",
        )
        declined = wait_until(
            lambda: settled(http, declined["id"]),
            timeout=120,
            interval=1,
            what="the declined order",
        )
        assert paid["status"] == "PAID"
        assert declined["status"] == "PAYMENT_FAILED"
        notifications = wait_until(
            lambda: http.get("/api/v1/notifications").json(),
            timeout=60,
            interval=1,
            what="a notification",
        )
        assert [n["order_id"] for n in notifications] == [paid["id"]]

    cluster.kubectl("--namespace", SHOP_NAMESPACE, "delete", f"shop/{name}", "--wait=true",
                    "--timeout=300s")  # fmt: skip
    # Owner references cascade: the Shop's Deployments go with it.
    wait_until(
        lambda: not cluster.kubectl(
            "--namespace", SHOP_NAMESPACE, "get", "deployments",
            "-l", f"app.kubernetes.io/instance={name}", "-o", "name",
        ).strip(),
        timeout=180,
        interval=1,
        what="the Shop's Deployments to be garbage collected",
    )  # fmt: skip
