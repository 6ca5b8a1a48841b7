"""Subscriptions by event type: routing keys come from the event classes handled, each event goes
to the handler of its type, and a type nobody handles is counted and dead-lettered at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from microshop.events import Event, OrderCreated, PaymentFailed, PaymentSucceeded
from microshop.platform.bus import IncomingMessage, OutgoingMessage, UnhandledEvent
from microshop.platform.bus.instrumented import InstrumentedBus
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.metrics import ServiceMetrics
from microshop.platform.outbox import to_message
from microshop.platform.subscriptions import EventHandler, Subscription
from microshop.platform.telemetry import ServiceTelemetry
from tests.support.events import order_created
from tests.support.polling import wait_until
from tests.unit.platform.conftest import FAST_RETRY

Seen = list[tuple[str, Event, dict[str, str]]]


def recorder(name: str) -> Callable[[Seen], EventHandler[Any]]:
    """A handler factory: what it makes records (its name, the event, the headers) in the store."""

    def make(store: Seen) -> EventHandler[Any]:
        return lambda event, headers: store.append((name, event, headers))

    return make


def succeeded() -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id="p-1", order_id="o-1", user_id="u-1", amount_cents=100, currency="EUR"
    )


def failed() -> PaymentFailed:
    return PaymentFailed(
        payment_id="p-2",
        order_id="o-2",
        user_id="u-1",
        amount_cents=100,
        currency="EUR",
        failure_code="card_declined",
    )


def delivered(event: Event, attempt: int = 1) -> IncomingMessage:
    message = to_message(event, {"traceparent": "t-1"})
    return IncomingMessage(message.routing_key, message.body, message.message_id, {}, attempt)


def test_routing_keys_come_from_the_event_classes_handled() -> None:
    subscription = (
        Subscription[Seen]("orders.payment-events")
        .on(PaymentSucceeded, recorder("succeeded"))
        .on(PaymentFailed, recorder("failed"))
    )

    assert subscription.routing_keys == ("payment.succeeded", "payment.failed")
    assert Subscription[Seen]("empty").routing_keys == ()


def test_an_event_class_is_handled_once_per_subscription() -> None:
    subscription = Subscription[Seen]("q").on(OrderCreated, recorder("first"))

    with pytest.raises(ValueError, match=r"q already handles order\.created"):
        subscription.on(OrderCreated, recorder("second"))


def test_each_event_goes_to_the_handler_of_its_type_with_its_headers() -> None:
    seen: Seen = []
    consume = (
        Subscription[Seen]("q")
        .on(PaymentSucceeded, recorder("succeeded"))
        .on(PaymentFailed, recorder("failed"))
        .consumer(seen)
    )
    first, second = succeeded(), failed()

    consume(
        IncomingMessage("payment.succeeded", first.model_dump_json().encode(), "m", {"h": "1"}, 1)
    )
    consume(IncomingMessage("payment.failed", second.model_dump_json().encode(), "m", {}, 1))

    assert seen == [("succeeded", first, {"h": "1"}), ("failed", second, {})]
    assert isinstance(seen[0][1], PaymentSucceeded)


def test_an_event_of_a_type_nobody_handles_raises_naming_queue_and_type() -> None:
    seen: Seen = []
    consume = Subscription[Seen]("q").on(PaymentSucceeded, recorder("succeeded")).consumer(seen)

    with pytest.raises(UnhandledEvent) as raised:
        consume(delivered(failed()))

    assert (raised.value.queue, raised.value.event_type) == ("q", "payment.failed")
    assert str(raised.value) == "q has no handler for 'payment.failed' events"
    assert seen == []


def test_a_malformed_delivery_raises_to_be_retried_not_as_unhandled() -> None:
    consume = Subscription[Seen]("q").on(OrderCreated, recorder("created")).consumer([])

    with pytest.raises(ValueError) as raised:
        consume(IncomingMessage("order.created", b"{not json", "m", {}, 1))

    assert not isinstance(raised.value, UnhandledEvent)


@pytest.fixture
def observed_bus() -> Iterator[tuple[InstrumentedBus, ServiceMetrics]]:
    metrics = ServiceMetrics()
    bus = InstrumentedBus(MemoryBus(FAST_RETRY), ServiceTelemetry("test", None, metrics))
    yield bus, metrics
    bus.close()


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_delivery_nobody_handles_is_dead_lettered_at_once_and_counted(
    observed_bus: tuple[InstrumentedBus, ServiceMetrics],
) -> None:
    bus, metrics = observed_bus
    seen: Seen = []
    subscription = Subscription[Seen]("notifications").on(PaymentSucceeded, recorder("paid"))
    bus.subscribe(subscription.queue, subscription.routing_keys, subscription.consumer(seen))
    stray = failed()  # under a routing key the queue is bound to, as a stale binding would bring

    bus.publish([OutgoingMessage("payment.succeeded", stray.model_dump_json().encode(), "stray")])
    bus.publish([to_message(succeeded())])

    wait_until(lambda: len(seen) == 1)  # the next event was handled: the stray is behind us
    [dead] = wait_until(lambda: bus.dead_letters("notifications"))
    assert (dead.message_id, dead.attempt) == ("stray", 1)  # no retries: none could help
    assert sample(metrics, "microshop_events_unhandled_total", type="payment.failed") == 1
    assert sample(metrics, "microshop_events_dead_lettered_total", type="payment.succeeded") == 1
    assert sample(metrics, "microshop_events_retried_total", type="payment.succeeded") == 0
    assert sample(metrics, "microshop_events_consumed_total", type="payment.succeeded") == 1


def test_a_failing_handler_is_still_retried_before_it_is_dead_lettered(
    observed_bus: tuple[InstrumentedBus, ServiceMetrics],
) -> None:
    bus, metrics = observed_bus
    attempts: list[int] = []

    def failing(store: Seen) -> EventHandler[OrderCreated]:
        def handle(event: OrderCreated, headers: dict[str, str]) -> None:
            attempts.append(len(attempts) + 1)
            raise RuntimeError("database down")

        return handle

    subscription = Subscription[Seen]("payments").on(OrderCreated, failing)
    bus.subscribe(subscription.queue, subscription.routing_keys, subscription.consumer([]))

    bus.publish([to_message(order_created())])

    [dead] = wait_until(lambda: bus.dead_letters("payments"))
    assert dead.attempt == FAST_RETRY.max_attempts
    assert attempts == list(range(1, FAST_RETRY.max_attempts + 1))
    assert sample(metrics, "microshop_events_unhandled_total", type="order.created") == 0
    assert sample(metrics, "microshop_events_retried_total", type="order.created") == 2
