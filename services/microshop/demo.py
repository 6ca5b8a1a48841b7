"""`make demo`: the shop's main job on embedded defaults, driven over real HTTP, step by step."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from microshop.standalone import Ports, StandaloneShop

FINAL = {"PAID", "PAYMENT_FAILED"}
# Where `make run` (`microshop standalone`, default ports) serves the storefront.
STOREFRONT_URL = f"http://127.0.0.1:{Ports.default().gateway}/"


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency}"


class DemoFailed(Exception):
    pass


async def run_session(base_url: str, say: Any = print) -> dict[str, Any]:
    """Register, log in, shop, pay, and read back; raise DemoFailed if the shop misbehaves."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:

        async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
            response = await http.request(method, path, **kwargs)
            if response.status_code != expect:
                raise DemoFailed(
                    f"{method} {path}: expected {expect}, got {response.status_code} "
                    f"{response.text}"
                )
            return response.json()

        storefront = await http.get("/")
        if storefront.status_code != 200 or "text/html" not in storefront.headers["content-type"]:
            raise DemoFailed(f"GET /: expected the storefront, got {storefront.status_code}")
        say(f"0. the storefront answers at {base_url}/ (a browser shops there; this uses the API)")

        email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
        say(f"1. register {email}")
        user = await call(
            "POST",
            "/api/v1/users",
            201,
            json={"email": email, "password": "correct horse battery", "name": "Ada"},
        )
        say(f"   -> user {user['id']}")

        say("2. log in (OAuth2 password form)")
        token = await call(
            "POST",
            "/api/v1/auth/token",
            200,
            data={"username": email, "password": "correct horse battery"},
        )
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        me = await call("GET", "/api/v1/users/me", 200)
        say(f"   -> bearer token, expires in {token['expires_in']} s; /users/me = {me['name']}")

        say("3. list products")
        products = await call("GET", "/api/v1/products", 200)
        for p in products["items"]:
            say(f"   {p['sku']:<12} {p['name']:<20} {_money(p['price_cents'], p['currency'])}")

        orders = {}
        for step, label, method, items in (
            (
                4,
                "paid",
                "pm_card_visa",
                [{"sku": "MUG-CLASSIC", "quantity": 2}, {"sku": "STICKERS-5", "quantity": 1}],
            ),
            (5, "declined", "pm_card_chargeDeclined", [{"sku": "HOODIE-GREY", "quantity": 1}]),
        ):
            key = str(uuid.uuid4())
            body = {"items": items, "payment_method": method}
            order = await call(
                "POST", "/api/v1/orders", 202, json=body, headers={"Idempotency-Key": key}
            )
            replay = await call(
                "POST", "/api/v1/orders", 202, json=body, headers={"Idempotency-Key": key}
            )
            if replay["id"] != order["id"]:
                raise DemoFailed("the same Idempotency-Key made a second order")
            say(
                f"{step}. place the {label} order with {method}: {order['status']}, "
                f"total {_money(order['total_cents'], order['currency'])} "
                f"(retried with the same Idempotency-Key: same order {order['id'][:8]})"
            )
            orders[label] = order

        say("6. wait for each order to settle (the saga runs over the bus)")
        for label, order in orders.items():
            deadline = time.monotonic() + 20
            while True:
                current = await call("GET", f"/api/v1/orders/{order['id']}", 200)
                if current["status"] in FINAL:
                    break
                if time.monotonic() > deadline:
                    raise DemoFailed(f"order {order['id']} did not settle in 20 s")
                await asyncio.sleep(0.1)
            orders[label] = current
            code = f" ({current['failure_code']})" if current["failure_code"] else ""
            say(f"   {label:<8} order {current['id'][:8]}: {current['status']}{code}")
        if orders["paid"]["status"] != "PAID" or orders["declined"]["status"] != "PAYMENT_FAILED":
            raise DemoFailed(f"unexpected outcome: {orders}")

        say("7. payments")
        for label, order in orders.items():
            payments = await call("GET", "/api/v1/payments", 200, params={"order_id": order["id"]})
            for p in payments["items"]:
                code = f" {p['failure_code']}" if p["failure_code"] else ""
                say(
                    f"   {label:<8} {_money(p['amount_cents'], p['currency'])}: {p['status']}{code}"
                )

        say("8. notifications")
        deadline = time.monotonic() + 10
        while True:
            unread = await call("GET", "/api/v1/notifications", 200, params={"unread": "true"})
            if unread["total"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        notifications = unread["items"]
        for n in notifications:
            say(f"   [{n['type']}] {n['message']}")
        if len(notifications) != 1 or notifications[0]["order_id"] != orders["paid"]["id"]:
            raise DemoFailed(f"expected one order_paid notification, got {notifications}")
        say(f"   {unread['total']} unread; mark it read")
        await call("POST", f"/api/v1/notifications/{notifications[0]['id']}/read", 200)
        left = await call("GET", "/api/v1/notifications", 200, params={"unread": "true"})
        say(f"   -> {left['total']} unread")
        if left["total"] != 0:
            raise DemoFailed(f"a notification marked read is still unread: {left}")
        return {"orders": orders, "notifications": notifications}


async def run_demo(data_dir: Path) -> dict[str, Any]:
    shop = StandaloneShop(data_dir, Ports.free())
    await shop.start()
    try:
        print(f"microshop demo: five services on embedded defaults, gateway at {shop.gateway_url}")
        print(f"(data in {data_dir}; `make run` keeps a shop serving on {STOREFRONT_URL})\n")
        result = await run_session(shop.gateway_url)
        print("\ndemo finished: one order PAID with one notification, one PAYMENT_FAILED.")
        print(f"to shop in a browser: `make run`, then open {STOREFRONT_URL}")
        return result
    finally:
        await shop.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="microshop-demo-") as data_dir:
        try:
            asyncio.run(run_demo(Path(data_dir)))
        except DemoFailed as exc:
            print(f"\ndemo FAILED: {exc}")
            return 1
    return 0
