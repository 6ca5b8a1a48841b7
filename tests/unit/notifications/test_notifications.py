"""The notifications service: payment events in, exactly one order_paid per order out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from microshop.events import NotificationSent, PaymentFailed, PaymentSucceeded, parse_event
from microshop.notifications.app import create_app
from microshop.notifications.handlers import QUEUE, SUBSCRIPTION
from microshop.notifications.models import Notification, NotificationsInbox
from microshop.notifications.settings import NotificationsSettings
from microshop.platform.auth import KeyPair, Principal, TokenIssuer
from microshop.platform.bus import IncomingMessage, OutgoingMessage, UnhandledEvent, Unroutable
from microshop.platform.outbox import to_message
from tests.support.polling import wait_until

ALICE, BOB = "user-alice", "user-bob"


def paid(order_id: str, user_id: str = ALICE, amount_cents: int = 1234) -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=str(uuid.uuid4()),
        order_id=order_id,
        user_id=user_id,
        amount_cents=amount_cents,
        currency="EUR",
    )


def publish(client: TestClient, *events: PaymentSucceeded | PaymentFailed) -> None:
    client.app.state.runtime.bus.publish([to_message(e) for e in events])  # type: ignore[attr-defined]


@pytest.fixture
def notifications_of(client: TestClient, keys: KeyPair) -> Callable[..., httpx.Response]:
    issuer = TokenIssuer(keys.private_pem, ttl_seconds=60)

    def get(user_id: str = ALICE, **params: Any) -> httpx.Response:
        token = issuer.issue(Principal(user_id=user_id, email=f"{user_id}@example.com"))
        return client.get(
            "/api/v1/notifications", params=params, headers={"Authorization": f"Bearer {token}"}
        )

    return get


def order_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200
    return [n["order_id"] for n in response.json()["items"]]


def settle(client: TestClient, notifications_of: Callable[..., httpx.Response]) -> None:
    """Wait until everything published so far is consumed.

    The queue is consumed in order by one thread (the fixture's one consumer), so once a marker
    event published last has made its notification, every event before it has been handled too.
    """
    marker = f"marker-{uuid.uuid4()}"
    publish(client, paid(marker, user_id="marker-user"))
    wait_until(lambda: order_ids(notifications_of("marker-user")) == [marker], timeout=5)


def test_a_succeeded_payment_makes_one_order_paid_notification(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    publish(client, paid("order-1", amount_cents=1234))

    wait_until(lambda: order_ids(notifications_of()) == ["order-1"], timeout=5)
    [notification] = notifications_of().json()["items"]
    assert notification["type"] == "order_paid"
    assert notification["message"] == "Your order order-1 is paid: 12.34 EUR"
    assert set(notification) == {"id", "order_id", "type", "message", "created_at", "read_at"}
    assert notification["read_at"] is None


def test_the_same_event_delivered_twice_makes_one_notification(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    event = paid("order-1")

    publish(client, event, event)
    settle(client, notifications_of)

    assert order_ids(notifications_of()) == ["order-1"]


def test_another_event_about_the_same_order_makes_no_second_notification(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    publish(client, paid("order-1"), paid("order-1"))
    settle(client, notifications_of)

    assert order_ids(notifications_of()) == ["order-1"]


def test_a_second_event_about_a_notified_order_is_handled_without_error(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    handler = SUBSCRIPTION.consumer(client.app.state.runtime.store)  # type: ignore[attr-defined]

    for event in (paid("order-1"), paid("order-1")):
        message = to_message(event)
        handler(IncomingMessage(message.routing_key, message.body, message.message_id, {}, 1))

    assert order_ids(notifications_of()) == ["order-1"]


def test_each_processed_event_is_recorded_once(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    metrics = client.app.state.telemetry.metrics  # type: ignore[attr-defined]
    event = paid("order-1")

    publish(client, event, event)

    def recorded() -> list[str]:
        with runtime.sessions() as session:
            return list(session.scalars(select(NotificationsInbox.event_id)))

    def handled() -> float:
        sample = metrics.registry.get_sample_value(
            "microshop_events_consumed_total", {"type": "payment.succeeded"}
        )
        return sample or 0.0

    # Both deliveries handled, the second one too: not only the first one's mark is in.
    wait_until(lambda: handled() == 2, timeout=5)
    wait_until(lambda: recorded() == [event.event_id], timeout=5)


def test_a_failed_payment_is_not_routed_to_notifications(client: TestClient) -> None:
    failed = PaymentFailed(
        payment_id="p-1",
        order_id="order-1",
        user_id=ALICE,
        amount_cents=1234,
        currency="EUR",
        failure_code="card_declined",
    )

    with pytest.raises(Unroutable):
        publish(client, failed)


def test_a_failed_payment_handed_to_the_handler_makes_no_notification(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    handler = SUBSCRIPTION.consumer(client.app.state.runtime.store)  # type: ignore[attr-defined]
    failed = to_message(
        PaymentFailed(
            payment_id="p-1",
            order_id="order-1",
            user_id=ALICE,
            amount_cents=1234,
            currency="EUR",
            failure_code="card_declined",
        )
    )

    with pytest.raises(UnhandledEvent):
        handler(IncomingMessage(failed.routing_key, failed.body, failed.message_id, {}, attempt=1))

    assert notifications_of().json()["items"] == []


def test_a_malformed_message_is_dead_lettered_and_makes_nothing(
    settings: NotificationsSettings,
) -> None:
    no_retries = settings.model_copy(update={"consumer_max_attempts": 1})
    with TestClient(create_app(no_retries)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]

        runtime.bus.publish([OutgoingMessage("payment.succeeded", b"{not json", "broken-1")])

        wait_until(lambda: len(runtime.bus.dead_letters(QUEUE)) == 1, timeout=5)
        with runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(Notification)) == 0


def test_a_user_sees_only_their_own_notifications_newest_first(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    publish(client, paid("order-1"), paid("order-2", user_id=BOB), paid("order-3"))
    settle(client, notifications_of)

    assert order_ids(notifications_of(ALICE)) == ["order-3", "order-1"]
    assert order_ids(notifications_of(BOB)) == ["order-2"]


def test_notifications_are_paginated(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    publish(client, *(paid(f"order-{i}") for i in range(5)))
    settle(client, notifications_of)

    assert order_ids(notifications_of(limit=2)) == ["order-4", "order-3"]
    assert order_ids(notifications_of(limit=2, offset=2)) == ["order-2", "order-1"]
    assert order_ids(notifications_of(limit=2, offset=4)) == ["order-0"]
    assert order_ids(notifications_of(offset=5)) == []
    assert notifications_of(limit=2, offset=4).json()["total"] == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
def test_pagination_out_of_bounds_is_rejected(
    notifications_of: Callable[..., httpx.Response], params: dict[str, Any], field: str
) -> None:
    response = notifications_of(**params)

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["query", field]]


def test_notifications_without_a_token_are_unauthorized(client: TestClient) -> None:
    response = client.get("/api/v1/notifications")

    assert response.status_code == 401
    assert response.json() == {
        "detail": "invalid or missing access token: missing bearer token",
        "request_id": response.headers["x-request-id"],
    }
    assert response.headers["www-authenticate"] == "Bearer"


def test_ready_once_database_and_bus_answer(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == ["bus", "consumers", "database"]


def test_each_notification_is_announced_and_a_re_sent_outcome_announces_it_again(
    client: TestClient, notifications_of: Callable[..., httpx.Response]
) -> None:
    announced: list[NotificationSent] = []

    def record(message: IncomingMessage) -> None:
        event = parse_event(message.body)
        assert isinstance(event, NotificationSent)
        announced.append(event)

    client.app.state.runtime.bus.subscribe("test.sent", ["notification.sent"], record)  # type: ignore[attr-defined]
    first = paid("order-7")
    publish(client, first)
    wait_until(lambda: len(announced) == 1, timeout=5)
    [notification] = notifications_of().json()["items"]
    assert (announced[0].order_id, announced[0].notification_id) == ("order-7", notification["id"])

    # Orders' sweeper drove the order again and payments re-sent its outcome (a new event id):
    # still one notification, announced once more so orders can record it.
    publish(client, first.model_copy(update={"event_id": str(uuid.uuid4())}))
    wait_until(lambda: len(announced) == 2, timeout=5)
    assert order_ids(notifications_of()) == ["order-7"]
    assert announced[1].notification_id == notification["id"]
    assert announced[1].event_id != announced[0].event_id
