"""A standalone shop driven through its gateway, with spans kept in memory and logs captured."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest

from microshop.platform.logs import JsonFormatter
from microshop.standalone import Ports, StandaloneShop

PASSWORD = "saga-password-" + uuid.uuid4().hex


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log record of the run (DEBUG up), formatted as the services format them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("standalone"))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@asynccontextmanager
async def standalone(tmp_path: object) -> AsyncIterator[StandaloneShop]:
    shop = StandaloneShop(tmp_path, Ports.free())  # type: ignore[arg-type]
    await shop.start()
    try:
        yield shop
    finally:
        await shop.stop()


async def eventually(probe, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def run_saga(gateway: str, payment_method: str = "pm_card_visa") -> dict:
    """Register, log in, place an order, wait for it to settle (and, if paid, its notification).

    Returns what a user saw, plus the secrets the run used (for the log checks).
    """
    email = f"saga-{uuid.uuid4().hex[:8]}@example.com"
    async with httpx.AsyncClient(base_url=gateway, timeout=10) as http:
        created = await http.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Saga"}
        )
        assert created.status_code == 201, created.text
        token = (
            await http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        placed = await http.post(
            "/api/v1/orders",
            json={
                "items": [{"sku": "MUG-CLASSIC", "quantity": 1}],
                "payment_method": payment_method,
            },
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]

        async def settled() -> dict | None:
            order = (await http.get(f"/api/v1/orders/{order_id}", headers=auth)).json()
            return order if order["status"] != "PENDING" else None

        order = await eventually(settled)
        notifications: list = []
        if order["status"] == "PAID":

            async def notified() -> list:
                return list((await http.get("/api/v1/notifications", headers=auth)).json())

            notifications = await eventually(notified)
        return {
            "order": order,
            "notifications": notifications,
            "token": token,
            "password": PASSWORD,
        }
