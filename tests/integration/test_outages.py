"""A database outage longer than the consumers' whole retry budget loses nothing (issue 10.1,
10.4): the consumer pauses instead of spending tries, the service answers 503 with Retry-After
and says why in /readyz, and everything settles once the database is back.

Five processes on a PostgreSQL cluster of the test's own (so it may be stopped), the machine's
RabbitMQ (a virtual host of the module's own: the session shop consumes queues of the same
names) and the SecantusDB server.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pika
import psycopg
import pytest

from microshop.platform.auth import generate_key_pair
from microshop.platform.bus.rabbit import dead_letter_queue_name
from tests.integration.test_saga import signed_in
from tests.support.polling import wait_until
from tests.support.servers import PrivatePostgres, SecantusServer
from tests.support.shop import SQL_SERVICES, Shop, build_shop

# The production policy: 5 tries, 0.5 s doubling, so a message would be dead-lettered 7.5 s
# after its first try. The outage below lasts longer than that after the orders are placed.
RETRY_BASE_SECONDS = 0.5
RETRY_BUDGET_SECONDS = sum(RETRY_BASE_SECONDS * 2**n for n in range(4))
OUTAGE_AFTER_PLACING_SECONDS = RETRY_BUDGET_SECONDS + 5
QUEUES = ("payments.order-events", "orders.payment-events", "notifications.payment-events")


@pytest.fixture(scope="module")
def outage_shop(
    private_postgres: PrivatePostgres,
    secantus: SecantusServer,
    module_vhost: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shop]:
    suffix = uuid.uuid4().hex[:8]
    urls = {s: private_postgres.create_database(f"outage_{s}_{suffix}") for s in SQL_SERVICES}
    shop = build_shop(
        tmp_path_factory.mktemp("outage"),
        {**urls, "orders": f"{secantus.url}?appname=orders-outage-{suffix}"},
        module_vhost,
        generate_key_pair(),
        {
            "MICROSHOP_DATABASE_NAME": f"orders_outage_{suffix}",
            "MICROSHOP_CONSUMER_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
        },
    )
    try:
        shop.start()
        yield shop
    finally:
        shop.stop()


def metrics(shop: Shop, service: str) -> str:
    port = shop.services[service].env["MICROSHOP_METRICS_PORT"]
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def gauge(text: str, name: str, queue: str) -> float | None:
    found = re.search(rf'^{name}{{queue="{re.escape(queue)}"}} (\S+)$', text, re.MULTILINE)
    return None if found is None else float(found.group(1))


def queue_depths(amqp_url: str) -> dict[str, int]:
    names = [*QUEUES, *(dead_letter_queue_name(q) for q in QUEUES)]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        return {q: channel.queue_declare(q, passive=True).method.message_count for q in names}
    finally:
        connection.close()


def log_lines(shop: Shop, service: str, text: str) -> list[str]:
    return [line for line in shop.services[service].log.read_text().splitlines() if text in line]


def test_postgres_down_longer_than_the_retry_budget_loses_nothing(
    outage_shop: Shop, private_postgres: PrivatePostgres
) -> None:
    shop = outage_shop
    buyer = signed_in(shop.gateway)
    payments = shop.services["payments"]
    methods = ["pm_card_visa"] * 4 + ["pm_card_chargeDeclined"] * 2

    private_postgres.stop()
    try:
        placed = []
        for i, method in enumerate(methods):
            response = buyer.post(
                "/api/v1/orders",
                json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": method},
                headers={"Idempotency-Key": f"outage-{i}-{uuid.uuid4().hex[:6]}"},
            )
            assert response.status_code == 202, response.text  # orders' own database is up
            placed.append((response.json()["id"], method))

        # Payments' consumer took an order.created, found its database away and paused.
        def paused() -> httpx.Response | None:
            ready = httpx.get(f"{payments.url}/readyz", timeout=5)
            failing = ready.json().get("failing", {})
            return ready if "payments.order-events" in failing.get("consumers", "") else None

        ready = wait_until(paused, timeout=30)
        assert ready.status_code == 503
        assert ready.json()["failing"] == {
            "database": "database unreachable",
            "consumers": "paused: payments.order-events (database unreachable)",
        }
        assert "127.0.0.1" not in ready.text  # no address on the public port
        assert gauge(metrics(shop, "payments"), "microshop_bus_consumer_paused", QUEUES[0]) == 1

        # Its routes answer 503 with Retry-After (through the gateway), not 500.
        for _ in range(5):
            listed = buyer.get("/api/v1/payments")
            assert listed.status_code == 503, listed.text
            assert listed.headers["retry-after"] == "5"
            body = listed.json()
            assert body["detail"] == "database unreachable: try again in 5 s"
            assert body["request_id"] == listed.headers["x-request-id"]

        time.sleep(OUTAGE_AFTER_PLACING_SECONDS)
        assert queue_depths(shop.amqp_url)[dead_letter_queue_name(QUEUES[0])] == 0
    finally:
        private_postgres.start()

    def settled() -> dict[str, str] | None:
        states = {oid: buyer.get(f"/api/v1/orders/{oid}").json()["status"] for oid, _ in placed}
        return states if "PENDING" not in states.values() else None

    states = wait_until(settled, timeout=90)
    assert states == {
        oid: "PAID" if method == "pm_card_visa" else "PAYMENT_FAILED" for oid, method in placed
    }
    paid = {oid for oid, method in placed if method == "pm_card_visa"}

    def notified() -> dict[str, int]:
        with psycopg.connect(shop.database_urls["notifications"].replace("+psycopg", "")) as c:
            rows = c.execute("SELECT order_id, count(*) FROM notifications GROUP BY order_id")
            return dict(rows.fetchall())

    wait_until(lambda: set(notified()) == paid, timeout=60)
    assert notified() == dict.fromkeys(paid, 1)

    # Nothing was dead-lettered, nothing waits; the consumer resumed by itself.
    wait_until(lambda: not any(queue_depths(shop.amqp_url).values()), timeout=60)
    assert gauge(metrics(shop, "payments"), "microshop_bus_consumer_paused", QUEUES[0]) == 0
    for queue, service in zip(QUEUES, ("payments", "orders", "notifications"), strict=True):
        assert gauge(metrics(shop, service), "microshop_bus_dead_letter_messages", queue) == 0
    assert payments.ready()

    # One warning for the outage's 503s and one line when it recovered, not one per request;
    # no try was spent and nothing dead-lettered.
    assert buyer.get("/api/v1/payments").status_code == 200
    # The line is written as the answer leaves, so the client may read it first.
    recovered_lines = wait_until(lambda: log_lines(shop, "payments", "requests answered 503"))
    outage_lines = log_lines(shop, "payments", "answering 503 until it recovers")
    assert len(outage_lines) == 1, outage_lines
    assert len(recovered_lines) == 1, recovered_lines
    assert "recovered after 5 requests answered 503" in recovered_lines[0]
    assert log_lines(shop, "payments", "handler failed; retrying") == []
    assert log_lines(shop, "payments", "dead-lettering") == []
    assert log_lines(shop, "payments", "consumer resumed")
