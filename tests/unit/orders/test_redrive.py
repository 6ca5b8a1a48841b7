"""Nothing waits forever (issue 10.2): an order still PENDING, or PAID without its notification,
after `redrive_after_seconds` is driven again (its order.created published once more), counted
in `microshop_orders_redriven_total{reason}`; a notified or failed order is left alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from microshop.events import (
    NotificationSent,
    OrderCreated,
    PaymentFailed,
    PaymentSucceeded,
    parse_event,
)
from microshop.orders.app import create_app
from microshop.orders.settings import OrdersSettings
from microshop.platform.auth import KeyPair
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import to_message
from microshop.platform.server import MetricsApp
from tests.support.polling import wait_until

AGE = 0.4  # seconds an order may wait before it is driven again


@pytest.fixture(params=["mongomock", "sqlite"])
def client(request: pytest.FixtureRequest, keys: KeyPair, tmp_path: Path) -> Iterator[TestClient]:
    urls = {"mongomock": "mongomock://", "sqlite": f"sqlite:///{tmp_path / 'orders.db'}"}
    settings = OrdersSettings(
        database_url=urls[request.param],
        bus_url=f"memory://redrive-{uuid.uuid4().hex}",
        jwt_public_key=keys.public_pem,
        outbox_poll_seconds=0.05,
        redrive_after_seconds=AGE,
        redrive_interval_seconds=0.1,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def order_created(client: TestClient) -> list[OrderCreated]:
    """Every order.created published, as a payments service that drops them all would see."""
    seen: list[OrderCreated] = []

    def drop(message: IncomingMessage) -> None:
        event = parse_event(message.body)
        assert isinstance(event, OrderCreated)
        seen.append(event)

    client.app.state.runtime.bus.subscribe("lossy.payments", ["order.created"], drop)  # type: ignore[attr-defined]
    return seen


@pytest.fixture
def alice(token_for: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for('alice')}"}


def place(client: TestClient, alice: dict[str, str], method: str = "pm_card_visa") -> str:
    response = client.post(
        "/api/v1/orders",
        json={"items": [{"sku": "MUG-CLASSIC", "quantity": 1}], "payment_method": method},
        headers={**alice, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text
    order_id: str = response.json()["id"]
    return order_id


def publish(client: TestClient, event: object) -> None:
    client.app.state.runtime.bus.publish([to_message(event)])  # type: ignore[attr-defined,arg-type]


def scraped(client: TestClient, series: str) -> float:
    """The value of one series (its name and labels, then a space) on the metrics port."""
    with TestClient(MetricsApp(client.app)) as metrics:  # type: ignore[arg-type]
        text = metrics.get("/metrics").text
    found = [row.removeprefix(series) for row in text.splitlines() if row.startswith(series)]
    return float(found[0]) if found else 0.0


def redriven(client: TestClient, reason: str) -> float:
    return scraped(client, f'microshop_orders_redriven_total{{reason="{reason}"}} ')


def driven(events: list[OrderCreated], order_id: str) -> list[OrderCreated]:
    return [e for e in events if e.order_id == order_id]


def test_a_pending_order_whose_payment_never_came_is_driven_again(
    client: TestClient, alice: dict[str, str], order_created: list[OrderCreated]
) -> None:
    order_id = place(client, alice)
    wait_until(lambda: driven(order_created, order_id))  # the first one, which payments "lost"

    again = wait_until(lambda: (d := driven(order_created, order_id)) and len(d) >= 2 and d)
    first, second = again[:2]
    assert second.event_id != first.event_id  # a new event, so payments' inbox lets it in
    assert second.model_dump(exclude={"event_id", "occurred_at"}) == first.model_dump(
        exclude={"event_id", "occurred_at"}
    )
    assert redriven(client, "payment_missing") >= 1
    assert redriven(client, "notification_missing") == 0


def test_a_paid_order_without_its_notification_is_driven_until_one_is_recorded(
    client: TestClient, alice: dict[str, str], order_created: list[OrderCreated]
) -> None:
    paid, failed = place(client, alice), place(client, alice, "pm_card_chargeDeclined")
    wait_until(lambda: driven(order_created, paid) and driven(order_created, failed))
    common = {"payment_id": "p", "user_id": "alice", "amount_cents": 1200, "currency": "EUR"}
    publish(client, PaymentSucceeded(order_id=paid, **common))
    publish(client, PaymentFailed(order_id=failed, failure_code="card_declined", **common))
    wait_until(
        lambda: (
            client.get(f"/api/v1/orders/{failed}", headers=alice).json()["status"]
            == "PAYMENT_FAILED"
        )
    )
    before = len(driven(order_created, paid))

    # PAID but no notification.sent: driven again (payments re-sends payment.succeeded).
    wait_until(lambda: len(driven(order_created, paid)) > before, timeout=5)
    assert redriven(client, "notification_missing") >= 1

    publish(client, NotificationSent(notification_id="n", order_id=paid, user_id="alice"))
    wait_until(
        lambda: scraped(client, 'microshop_events_consumed_total{type="notification.sent"} ')
    )
    settled_count = {o: len(driven(order_created, o)) for o in (paid, failed)}
    # Several periods later neither a notified nor a failed order has been driven again.
    threading.Event().wait(AGE * 4)
    assert {o: len(driven(order_created, o)) for o in (paid, failed)} == settled_count
