"""The order → payment → notification saga across five processes on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pika
import psycopg
import pytest

from microshop.events import EXCHANGE, PaymentSucceeded
from tests.support.polling import wait_until
from tests.support.shop import Shop

EXPECTED = {
    "pm_card_visa": ("PAID", None),
    "pm_card_mastercard": ("PAID", None),
    "pm_card_chargeDeclined": ("PAYMENT_FAILED", "card_declined"),
    "pm_card_chargeDeclinedInsufficientFunds": ("PAYMENT_FAILED", "insufficient_funds"),
}
SKUS = ["MUG-CLASSIC", "TEE-LOGO-M", "HOODIE-GREY", "STICKERS-5", "NOTEBOOK-A5"]


def sql(url: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        return connection.execute(query, params).fetchall()


def signed_in(gateway: str) -> httpx.Client:
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    client = httpx.Client(base_url=gateway, timeout=15)
    created = client.post(
        "/api/v1/users", json={"email": email, "password": "s3cret-pass", "name": "Buyer"}
    )
    assert created.status_code == 201, created.text
    token = client.post("/api/v1/auth/token", data={"username": email, "password": "s3cret-pass"})
    assert token.status_code == 200, token.text
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return client


@pytest.fixture(scope="module")
def tap(shop: Shop):
    """A queue bound to every event, so tests can see exactly what was published."""
    connection = pika.BlockingConnection(pika.URLParameters(shop.amqp_url))
    channel = connection.channel()
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare("test.tap", exclusive=True)
    channel.queue_bind("test.tap", EXCHANGE, routing_key="#")

    def drain() -> list[dict]:
        events = []
        while True:
            method, _props, body = channel.basic_get("test.tap", auto_ack=True)
            if method is None:
                return events
            events.append(json.loads(body))

    yield drain
    connection.close()


def test_one_hundred_orders_settle_consistently(shop: Shop, tap) -> None:
    buyers = [signed_in(shop.gateway) for _ in range(4)]
    methods = list(EXPECTED)

    def place(i: int) -> tuple[str, str, str]:
        buyer = buyers[i % len(buyers)]
        method = methods[i % len(methods)]
        items = [{"sku": SKUS[i % len(SKUS)], "quantity": 1 + i % 3}]
        response = buyer.post(
            "/api/v1/orders",
            json={"items": items, "payment_method": method},
            headers={"Idempotency-Key": f"order-{i}"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "PENDING"
        return response.json()["id"], method, str(i % len(buyers))

    with ThreadPoolExecutor(max_workers=8) as pool:
        placed = list(pool.map(place, range(100)))
    assert len({order_id for order_id, _, _ in placed}) == 100

    def all_settled() -> bool:
        for buyer in buyers:
            page = buyer.get("/api/v1/orders", params={"limit": 100}).json()
            if any(o["status"] == "PENDING" for o in page["items"]):
                return False
        return True

    wait_until(all_settled, timeout=90, interval=0.5)

    paid = set()
    for order_id, method, buyer_index in placed:
        buyer = buyers[int(buyer_index)]
        order = buyer.get(f"/api/v1/orders/{order_id}").json()
        status, failure = EXPECTED[method]
        assert (order["status"], order["failure_code"]) == (status, failure), order
        payments = buyer.get("/api/v1/payments", params={"order_id": order_id}).json()["items"]
        assert len(payments) == 1, payments
        assert payments[0]["amount_cents"] == order["total_cents"]
        assert payments[0]["status"] == ("SUCCEEDED" if status == "PAID" else "FAILED")
        assert payments[0]["failure_code"] == failure
        if status == "PAID":
            paid.add(order_id)

    notified = Counter()
    for buyer in buyers:
        for n in buyer.get("/api/v1/notifications", params={"limit": 100}).json()["items"]:
            assert n["type"] == "order_paid"
            notified[n["order_id"]] += 1
    assert set(notified) == paid
    assert set(notified.values()) == {1}
    assert len(paid) == 50

    # The databases agree with the API: one payment per order, one notification per paid one.
    ids = [order_id for order_id, _, _ in placed]
    assert sql(
        shop.database_urls["payments"],
        "SELECT count(*) FROM payments WHERE order_id = ANY(%s)",
        ids,
    ) == [(100,)]
    assert sql(
        shop.database_urls["notifications"],
        "SELECT count(*) FROM notifications WHERE order_id = ANY(%s)",
        ids,
    ) == [(50,)]
    # Every outbox is drained, and every event went out exactly once per kind and order.
    assert sql(shop.database_urls["payments"], "SELECT count(*) FROM outbox") == [(0,)]
    seen = Counter((e["type"], e["order_id"]) for e in tap() if e["order_id"] in set(ids))
    assert sum(1 for (kind, _), _n in seen.items() if kind == "order.created") == 100
    assert max(seen.values()) == 1


def test_the_same_event_delivered_twice_changes_nothing(shop: Shop, tap) -> None:
    buyer = signed_in(shop.gateway)
    tap()
    order = buyer.post(
        "/api/v1/orders",
        json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": "pm_card_visa"},
        headers={"Idempotency-Key": "twice"},
    ).json()
    wait_until(lambda: buyer.get(f"/api/v1/orders/{order['id']}").json()["status"] == "PAID")
    events: dict[str, dict] = {}

    def seen_all() -> bool:
        events.update({e["type"]: e for e in tap() if e["order_id"] == order["id"]})
        return set(events) == {"order.created", "payment.succeeded", "notification.sent"}

    wait_until(seen_all)

    # Deliver both events again, byte for byte, as a broker redelivery would.
    connection = pika.BlockingConnection(pika.URLParameters(shop.amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for event in events.values():
        channel.basic_publish(
            EXCHANGE,
            event["type"],
            json.dumps(event).encode(),
            pika.BasicProperties(message_id=event["event_id"], delivery_mode=2),
        )
    connection.close()
    # Wait until all three consumers have handled the repeats (their inboxes saw them twice).
    marker = buyer.post(
        "/api/v1/orders",
        json={"items": [{"sku": "STICKERS-5", "quantity": 1}], "payment_method": "pm_card_visa"},
        headers={"Idempotency-Key": "marker"},
    ).json()
    wait_until(lambda: buyer.get("/api/v1/notifications").json()["total"] == 2)

    assert buyer.get(f"/api/v1/orders/{order['id']}").json()["status"] == "PAID"
    payments = buyer.get("/api/v1/payments", params={"order_id": order["id"]}).json()
    assert payments["total"] == 1
    notes = buyer.get("/api/v1/notifications").json()["items"]
    assert sorted(n["order_id"] for n in notes) == sorted([order["id"], marker["id"]])
    # The repeats were recognised by event id (each inbox holds the event once), not only
    # stopped by the unique constraints and the state machine behind it.
    for service, kind in (("payments", "order.created"), ("notifications", "payment.succeeded")):
        event_id = events[kind]["event_id"]
        assert sql(
            shop.database_urls[service],
            "SELECT count(*) FROM processed_events WHERE event_id = %s",
            event_id,
        ) == [(1,)], service
    again = tap()
    assert [e["type"] for e in again if e["order_id"] == order["id"]] == [
        "order.created",
        "payment.succeeded",
        "notification.sent",  # only our own re-sends: no new event came of them
    ]


CRASHING_CONSUMER = """
import os, sys
from pathlib import Path
from microshop import registry
from microshop.notifications import app as notifications_app
from microshop.notifications.handlers import SUBSCRIPTION
from microshop.notifications.models import NotificationsOutbox
from microshop.notifications.settings import NotificationsSettings
from microshop.platform.runtime import SqlRuntime

settings = NotificationsSettings()
runtime = SqlRuntime.open(
    settings,
    registry.service("notifications").migrations,
    NotificationsOutbox,
    store=notifications_app.open_store,
)
handler = SUBSCRIPTION.consumer(runtime.store)

def commit_then_die(message):
    handler(message)          # the notification and the inbox mark are committed here
    print("committed; dying before the ack", flush=True)
    os._exit(17)              # the process dies: no ack ever reaches the broker

runtime.bus.subscribe(SUBSCRIPTION.queue, SUBSCRIPTION.routing_keys, commit_then_die)
import time
time.sleep(60)
sys.exit(1)
"""


def test_a_consumer_that_dies_after_commit_before_ack_causes_no_duplicate(
    shop: Shop, tmp_path: Path
) -> None:
    notifications = shop.services["notifications"]
    notifications.stop()
    try:
        event = PaymentSucceeded(
            payment_id=str(uuid.uuid4()),
            order_id=str(uuid.uuid4()),
            user_id=str(uuid.uuid4()),
            amount_cents=1200,
            currency="EUR",
        )
        crasher = subprocess.Popen(
            [sys.executable, "-c", CRASHING_CONSUMER],
            # One consumer: the one that takes the message and dies.
            env={**notifications.env, "MICROSHOP_CONSUMERS_PER_QUEUE": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        connection = pika.BlockingConnection(pika.URLParameters(shop.amqp_url))
        channel = connection.channel()
        channel.confirm_delivery()
        queue = "notifications.payment-events"
        # A fresh interpreter has to import the service first: on a busy machine that takes a while.
        wait_until(
            lambda: channel.queue_declare(queue, passive=True).method.consumer_count == 1,
            timeout=60,
        )
        channel.basic_publish(
            EXCHANGE,
            event.type,
            event.model_dump_json().encode(),
            pika.BasicProperties(message_id=event.event_id, delivery_mode=2),
        )
        output, _ = crasher.communicate(timeout=30)
        assert crasher.returncode == 17, output
        rows = sql(
            shop.database_urls["notifications"],
            "SELECT count(*) FROM notifications WHERE order_id = %s",
            event.order_id,
        )
        assert rows == [(1,)]  # committed before the crash
        declared = channel.queue_declare("notifications.payment-events", passive=True)
        assert declared.method.message_count == 1  # unacked, so the broker kept it
    finally:
        notifications.start()
    # The redelivered message reaches the restarted service, which skips it by event_id and acks.
    # A later event on the same queue, once handled, shows the redelivery was handled before it.
    later = event.model_copy(update={"event_id": str(uuid.uuid4()), "order_id": str(uuid.uuid4())})
    channel.basic_publish(
        EXCHANGE,
        later.type,
        later.model_dump_json().encode(),
        pika.BasicProperties(message_id=later.event_id, delivery_mode=2),
    )
    connection.close()
    wait_until(
        lambda: sql(
            shop.database_urls["notifications"],
            "SELECT 1 FROM notifications WHERE order_id = %s",
            later.order_id,
        ),
        timeout=20,
    )
    assert sql(
        shop.database_urls["notifications"],
        "SELECT count(*) FROM notifications WHERE order_id = %s",
        event.order_id,
    ) == [(1,)]
    assert sql(
        shop.database_urls["notifications"],
        "SELECT count(*) FROM processed_events WHERE event_id = %s",
        event.event_id,
    ) == [(1,)]
