"""The payments service: test payment methods, one payment per order, outcome events, the API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded, parse_event
from microshop.payment_methods import PAYMENT_METHODS
from microshop.payments.app import create_app
from microshop.payments.domain import TEST_PAYMENT_METHODS, PaymentStatus, charge
from microshop.payments.models import Payment
from microshop.payments.settings import PaymentsSettings
from microshop.platform.auth import KeyPair
from microshop.platform.bus import IncomingMessage, OutgoingMessage
from microshop.platform.outbox import to_message
from tests.support.polling import wait_until


@pytest.mark.parametrize(
    ("method", "status", "code"),
    [
        ("pm_card_visa", PaymentStatus.SUCCEEDED, None),
        ("pm_card_mastercard", PaymentStatus.SUCCEEDED, None),
        ("pm_card_chargeDeclined", PaymentStatus.FAILED, "card_declined"),
        ("pm_card_chargeDeclinedInsufficientFunds", PaymentStatus.FAILED, "insufficient_funds"),
        ("pm_card_unknown", PaymentStatus.FAILED, "payment_method_unsupported"),
    ],
)
def test_test_payment_methods(method: str, status: PaymentStatus, code: str | None) -> None:
    outcome = charge(method, 1000)
    assert (outcome.status, outcome.failure_code) == (status, code)


def test_nothing_is_charged_for_a_non_positive_amount() -> None:
    assert charge("pm_card_visa", 0).failure_code == "invalid_amount"


@pytest.fixture
def client(keys: KeyPair, tmp_path) -> Iterator[TestClient]:
    settings = PaymentsSettings(
        database_url=f"sqlite:///{tmp_path / 'payments.db'}",
        bus_url=f"memory://payments-{uuid.uuid4().hex}",
        jwt_public_key=keys.public_pem,
        outbox_poll_seconds=0.05,
        # One consumer: events are handled in the order published, so an event published last
        # drains the queue (the in-process bus's default runs 16 side by side).
        consumers_per_queue=1,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def outcomes(client: TestClient) -> list[IncomingMessage]:
    seen: list[IncomingMessage] = []
    bus = client.app.state.runtime.bus  # type: ignore[attr-defined]
    bus.subscribe("test.payment-events", ["payment.*"], seen.append)
    return seen


def order_created(method: str = "pm_card_visa", **fields: object) -> OrderCreated:
    values: dict = {
        "order_id": str(uuid.uuid4()),
        "user_id": "alice",
        "total_cents": 2400,
        "currency": "EUR",
        "payment_method": method,
        **fields,
    }
    return OrderCreated(**values)


def send(client: TestClient, event: OrderCreated) -> None:
    client.app.state.runtime.bus.publish([to_message(event)])  # type: ignore[attr-defined]


def payments_of(client: TestClient, order_id: str) -> int:
    with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
        return session.scalar(
            select(func.count()).select_from(Payment).where(Payment.order_id == order_id)
        )


def test_an_order_is_charged_and_its_outcome_published(
    client: TestClient, outcomes: list[IncomingMessage]
) -> None:
    placed = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    paid = order_created(placed_at=placed)
    declined = order_created("pm_card_chargeDeclined", placed_at=placed)
    send(client, paid)
    send(client, declined)
    wait_until(lambda: len(outcomes) == 2)
    events = {e.order_id: e for e in (parse_event(m.body) for m in outcomes)}  # type: ignore[union-attr]
    succeeded, failed = events[paid.order_id], events[declined.order_id]
    assert isinstance(succeeded, PaymentSucceeded) and succeeded.amount_cents == 2400
    assert isinstance(failed, PaymentFailed) and failed.failure_code == "card_declined"
    # When the order was placed, for orders' placed → settled histogram.
    assert succeeded.placed_at == failed.placed_at == placed


def test_an_order_is_charged_once_however_often_it_arrives(
    client: TestClient, outcomes: list[IncomingMessage]
) -> None:
    event = order_created()
    send(client, event)
    send(client, event)  # a redelivery: same event id
    placed = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    resent = event.model_copy(update={"event_id": str(uuid.uuid4()), "placed_at": placed})
    send(client, resent)  # a re-sent order
    marker = order_created()
    send(client, marker)
    wait_until(lambda: any(parse_event(m.body).order_id == marker.order_id for m in outcomes))  # type: ignore[union-attr]
    assert payments_of(client, event.order_id) == 1
    # The redelivery did nothing; the re-sent order (orders' sweeper drove it again) got the
    # same payment's outcome once more, under a new event id.
    mine = [parse_event(m.body) for m in outcomes]
    mine = [e for e in mine if e.order_id == event.order_id]
    assert len(mine) == 2
    assert len({e.payment_id for e in mine}) == 1  # type: ignore[union-attr]
    assert len({e.event_id for e in mine}) == 2
    # Each says when the order was placed as its order.created did (the first did not).
    assert [e.placed_at for e in mine] == [None, placed]


def test_payments_are_listed_for_their_owner_only(
    client: TestClient, token_for: Callable[..., str], outcomes: list[IncomingMessage]
) -> None:
    mine, theirs = order_created(), order_created(user_id="bob")
    send(client, mine)
    send(client, theirs)
    wait_until(lambda: len(outcomes) == 2)
    alice = {"Authorization": f"Bearer {token_for('alice')}"}
    page = client.get("/api/v1/payments", headers=alice).json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 20, 0)
    listed = page["items"]
    assert [p["order_id"] for p in listed] == [mine.order_id]
    assert listed[0]["status"] == "SUCCEEDED" and listed[0]["amount_cents"] == 2400
    assert listed[0]["created_at"].endswith(("+00:00", "Z"))
    by_order = client.get("/api/v1/payments", params={"order_id": theirs.order_id}, headers=alice)
    assert by_order.status_code == 200
    assert by_order.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_payments_need_a_valid_token(client: TestClient) -> None:
    response = client.get("/api/v1/payments", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_a_malformed_event_is_dead_lettered_not_lost(client: TestClient, keys: KeyPair) -> None:
    bus = client.app.state.runtime.bus  # type: ignore[attr-defined]
    bus.retry = type(bus.retry)(max_attempts=2, base_delay_seconds=0.01)
    bus.publish([OutgoingMessage("order.created", b'{"type": "order.created"}', "bad-1")])
    dead = wait_until(lambda: bus.dead_letters("payments.order-events"))
    assert dead[0].message_id == "bad-1" and dead[0].attempt == 2


def test_every_payment_method_orders_accept_has_an_outcome() -> None:
    assert set(TEST_PAYMENT_METHODS) == PAYMENT_METHODS
