"""The five processes' logs after a full saga: one JSON event per line, no secret anywhere."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from tests.support.polling import wait_until
from tests.support.shop import Shop

FIELDS = {"ts", "level", "service", "logger", "message", "request_id", "trace_id", "span_id"}


def test_logs_are_json_lines_with_context_and_never_a_secret(shop: Shop) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    email = f"logs-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=shop.gateway, timeout=15) as http:
        assert (
            http.post(
                "/api/v1/users", json={"email": email, "password": password, "name": "Logs"}
            ).status_code
            == 201
        )
        # A wrong password too: a failed login must not log what was tried.
        assert (
            http.post(
                "/api/v1/auth/token", data={"username": email, "password": password + "x"}
            ).status_code
            == 401
        )
        token = http.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for method in ("pm_card_visa", "pm_card_chargeDeclined"):
            placed = http.post(
                "/api/v1/orders",
                json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": method},
                headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            )
            assert placed.status_code == 202, placed.text
            url = f"/api/v1/orders/{placed.json()['id']}"
            wait_until(
                lambda url=url: http.get(url, headers=auth).json()["status"] != "PENDING",
                timeout=30,
            )
        wait_until(
            lambda: http.get("/api/v1/notifications", headers=auth).json()["total"], timeout=30
        )
        assert (
            http.get("/api/v1/users/me", headers={"Authorization": "Bearer x.y.z"}).status_code
            == 401
        )
    time.sleep(0.5)  # let the last consumer's line reach its file

    private_key_body = "".join(shop.keys.private_pem.strip().splitlines()[1:-1])
    secrets = {
        "the user's password": password,
        "the access token": token,
        "the token's signature": token.rsplit(".", 1)[1],
        "the JWT private key": private_key_body,
        "the broker credentials": "guest:guest@",
    }
    lines_by_service: dict[str, int] = {}
    for name, service in shop.services.items():
        for number, line in enumerate(service.log.read_text().splitlines(), 1):
            where = f"{name}.log:{number}"
            for what, secret in secrets.items():
                assert secret not in line, f"{what} in {where}: {line[:200]}"
            event = json.loads(line)  # every line is one JSON event
            assert set(event) >= FIELDS, f"{where} lacks {FIELDS - set(event)}"
            assert event["service"] == name and event["level"] in {
                "debug",
                "info",
                "warning",
                "error",
                "critical",
            }
            lines_by_service[name] = lines_by_service.get(name, 0) + 1
    # The consumers said what they did, so the check above read real lines.
    assert {"payments", "orders", "notifications"} <= set(lines_by_service), lines_by_service
