"""The standalone shop: the demo's scripted session passes, and data survives a restart."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from microshop.demo import run_demo
from microshop.standalone import Ports, StandaloneShop


def test_the_demo_session_runs_against_a_standalone_shop_and_prints_the_storefront_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = asyncio.run(run_demo(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert result["orders"]["paid"]["status"] == "PAID"
    assert result["orders"]["declined"]["status"] == "PAYMENT_FAILED"
    assert result["orders"]["declined"]["failure_code"] == "card_declined"
    assert [n["type"] for n in result["notifications"]] == ["order_paid"]
    assert any("FAILED card_declined" in line for line in lines)
    # The notification was unread, and marking it read cleared the count.
    assert "   1 unread; mark it read" in lines and "   -> 0 unread" in lines
    # Where a person shops: the demo's own shop while it runs, then `make run`'s.
    assert any(re.search(r"storefront answers at http://127\.0\.0\.1:\d+/", line) for line in lines)
    assert lines[-1] == "to shop in a browser: `make run`, then open http://127.0.0.1:8080/"


def test_data_survives_a_restart(tmp_path: Path) -> None:
    credentials = {"username": "kept@example.com", "password": "kept-password"}

    async def first_life() -> str:
        shop = StandaloneShop(tmp_path, Ports.free())
        await shop.start()
        try:
            async with httpx.AsyncClient(base_url=shop.gateway_url) as http:
                created = await http.post(
                    "/api/v1/users",
                    json={
                        "email": credentials["username"],
                        "password": credentials["password"],
                        "name": "Kept",
                    },
                )
                assert created.status_code == 201
                token = (await http.post("/api/v1/auth/token", data=credentials)).json()
                order = await http.post(
                    "/api/v1/orders",
                    json={
                        "items": [{"sku": "MUG-CLASSIC", "quantity": 1}],
                        "payment_method": "pm_card_visa",
                    },
                    headers={
                        "Authorization": f"Bearer {token['access_token']}",
                        "Idempotency-Key": "kept",
                    },
                )
                assert order.status_code == 202
                return str(order.json()["id"])
        finally:
            await shop.stop()

    async def second_life(order_id: str) -> dict:
        shop = StandaloneShop(tmp_path, Ports.free())
        await shop.start()
        try:
            async with httpx.AsyncClient(base_url=shop.gateway_url) as http:
                token = await http.post("/api/v1/auth/token", data=credentials)
                assert token.status_code == 200  # the user and the signing key were kept
                auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
                for _ in range(200):
                    order = (await http.get(f"/api/v1/orders/{order_id}", headers=auth)).json()
                    if order["status"] != "PENDING":
                        break
                    await asyncio.sleep(0.05)
                return dict(order)
        finally:
            await shop.stop()

    order_id = asyncio.run(first_life())
    order = asyncio.run(second_life(order_id))
    assert order["id"] == order_id
    assert order["status"] == "PAID"


def test_free_ports_are_distinct_and_each_can_be_bound() -> None:
    import socket

    from microshop.standalone import free_ports

    ports = free_ports(40)
    assert len(set(ports)) == 40
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
