"""/metrics on every service: requests per route template, events, outbox, settled orders."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from microshop.payments.app import create_app as payments_app
from microshop.payments.settings import PaymentsSettings
from microshop.platform.auth import generate_key_pair
from microshop.platform.bus import OutgoingMessage
from microshop.platform.server import MetricsApp
from microshop.platform.settings import ServiceSettings
from microshop.platform.web import create_app
from microshop.registry import NAMES
from tests.support.polling import wait_until
from tests.unit.telemetry.conftest import run_saga, standalone

ROOT = Path(__file__).resolve().parents[3]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


_SERIES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def parse(text: str) -> Samples:
    """Samples by (name, labels); a declared family with no sample yet is there as zeros."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for suffix in _SERIES.get(family.type, ()):
            samples[(family.name + suffix, frozenset())] = 0.0
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(app: FastAPI) -> Samples:
    """The app's metrics as its metrics port serves them."""
    with TestClient(MetricsApp(app)) as metrics:
        return parse(metrics.get("/metrics").text)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Samples]:
    """Every service's /metrics before and after a paid and a declined order."""

    async def scenario() -> dict[str, Samples]:
        async with standalone(tmp_path_factory.mktemp("shop")) as shop:
            urls = {name: f"http://127.0.0.1:{shop.ports[name]}" for name in NAMES}
            await run_saga(shop.gateway_url, "pm_card_visa")
            await run_saga(shop.gateway_url, "pm_card_chargeDeclined")
            async with httpx.AsyncClient() as http:
                for url in urls.values():  # probes must not count as traffic
                    await http.get(f"{url}/healthz")
                    await http.get(f"{url}/readyz")
                    public = await http.get(f"{url}/metrics")  # never on the public port
                    assert public.status_code == 404, public.text
                return {
                    name: parse((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                    for name, port in shop.ports.metrics.items()
                }

    return asyncio.run(scenario())


def test_requests_are_counted_per_route_template_not_raw_path(scraped: dict[str, Samples]) -> None:
    gateway, orders = scraped["gateway"], scraped["orders"]
    route = {"method": "POST", "route": "/api/v1/orders"}
    assert value(gateway, "microshop_http_requests_total", **route, status="202") == 2
    assert value(gateway, "microshop_http_request_duration_seconds_count", **route) == 2
    assert value(orders, "microshop_http_requests_total", **route, status="202") == 2
    by_id = {"method": "GET", "route": "/api/v1/orders/{order_id}", "status": "200"}
    assert value(orders, "microshop_http_requests_total", **by_id) >= 2
    routes = {dict(labels).get("route") for name, labels in orders if "http_requests" in name}
    assert not {"/metrics", "/healthz", "/readyz"} & routes
    assert not any(r and r.count("-") >= 4 for r in routes)  # no order id in a label


def test_events_are_counted_by_type_on_both_sides(scraped: dict[str, Samples]) -> None:
    orders, payments = scraped["orders"], scraped["payments"]
    notifications = scraped["notifications"]
    assert value(orders, "microshop_events_published_total", type="order.created") == 2
    assert value(payments, "microshop_events_consumed_total", type="order.created") == 2
    assert value(payments, "microshop_events_published_total", type="payment.succeeded") == 1
    assert value(payments, "microshop_events_published_total", type="payment.failed") == 1
    assert value(orders, "microshop_events_consumed_total", type="payment.succeeded") == 1
    assert value(orders, "microshop_events_consumed_total", type="payment.failed") == 1
    assert value(notifications, "microshop_events_consumed_total", type="payment.succeeded") == 1


def test_orders_by_final_state_and_time_to_settle(scraped: dict[str, Samples]) -> None:
    orders = scraped["orders"]
    assert value(orders, "microshop_orders_settled_total", status="PAID") == 1
    assert value(orders, "microshop_orders_settled_total", status="PAYMENT_FAILED") == 1
    assert value(orders, "microshop_order_settle_seconds_count") == 2
    assert 0 < value(orders, "microshop_order_settle_seconds_sum") < 30


def test_outbox_backlog_is_reported_where_there_is_an_outbox(scraped: dict[str, Samples]) -> None:
    # notifications publishes notification.sent through its outbox; users publishes nothing.
    for service in ("orders", "payments", "notifications"):
        assert value(scraped[service], "microshop_outbox_backlog_events") == 0
        assert value(scraped[service], "microshop_outbox_oldest_event_age_seconds") == 0
        assert "microshop_outbox_backlog_events" in names(scraped[service])
    assert "microshop_outbox_backlog_events" not in names(scraped["users"])


@pytest.mark.parametrize(
    ("service", "queue"),
    [
        ("orders", "orders.payment-events"),
        ("payments", "payments.order-events"),
        ("notifications", "notifications.payment-events"),
    ],
)
def test_each_consumed_queue_reports_its_pause_and_dead_letters(
    scraped: dict[str, Samples], service: str, queue: str
) -> None:
    assert value(scraped[service], "microshop_bus_consumer_paused", queue=queue) == 0
    assert value(scraped[service], "microshop_bus_dead_letter_messages", queue=queue) == 0
    assert "microshop_bus_consumer_paused" not in names(scraped["users"])


def test_server_errors_are_counted_apart() -> None:
    app = create_app(title="t", service="t", settings=ServiceSettings(), readiness={})

    @app.get("/boom/{n}")
    def boom(n: int) -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom/1").status_code == 500
        samples = scrape(app)
    labels = {"method": "GET", "route": "/boom/{n}", "status": "500"}
    assert value(samples, "microshop_http_request_errors_total", **labels) == 1
    assert value(samples, "microshop_http_requests_total", **labels) == 1


@pytest.fixture
def payments(tmp_path: Path) -> Iterator[TestClient]:
    settings = PaymentsSettings(
        database_url=f"sqlite:///{tmp_path / 'payments.db'}",
        bus_url=f"memory://payments-{uuid.uuid4().hex}",
        jwt_public_key=generate_key_pair().public_pem,
        consumer_max_attempts=2,
        consumer_retry_base_seconds=0.01,
    )
    with TestClient(payments_app(settings)) as client:
        yield client


def test_retries_and_dead_letters_are_counted(payments: TestClient) -> None:
    bus = payments.app.state.runtime.bus  # type: ignore[attr-defined]
    bus.publish([OutgoingMessage("order.created", b'{"type": "order.created"}', "bad-1")])
    wait_until(lambda: bus.dead_letters("payments.order-events"))
    samples = scrape(payments.app)  # type: ignore[arg-type]
    assert value(samples, "microshop_events_retried_total", type="order.created") == 1
    assert value(samples, "microshop_events_dead_lettered_total", type="order.created") == 1
    assert value(samples, "microshop_events_consumed_total", type="order.created") == 0


def test_every_metric_the_dashboard_queries_is_served(scraped: dict[str, Samples]) -> None:
    dashboard = json.loads(
        (ROOT / "charts/microshop-operator/dashboards/microshop.json").read_text()
    )
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bmicroshop_[a-z_]+", target["expr"])
    }
    served = set().union(*(names(samples) for samples in scraped.values()))
    assert len(queried) >= 8
    assert queried <= served, queried - served
