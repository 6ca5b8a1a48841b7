"""On RabbitMQ, a delivery of an event type its queue's consumer does not handle goes straight to
the dead-letter queue: no retry queue holds it, and it is not acked unseen."""

from __future__ import annotations

from microshop.events import OrderCreated, PaymentFailed
from microshop.platform.bus import OutgoingMessage, RetryPolicy
from microshop.platform.bus.rabbit import RabbitBus, dead_letter_queue_name, retry_queue_name
from microshop.platform.subscriptions import EventHandler, Subscription
from tests.integration.test_bus_faults import queue_depths
from tests.support.events import order_created
from tests.support.polling import wait_until

POLICY = RetryPolicy(max_attempts=4, base_delay_seconds=0.2, max_delay_seconds=5.0)


def test_an_unhandled_event_type_is_dead_lettered_on_its_first_delivery(bus_vhost: str) -> None:
    handled: list[str] = []

    def charge(store: None) -> EventHandler[OrderCreated]:
        return lambda event, headers: handled.append(event.event_id)

    subscription = Subscription[None]("payments.order-events").on(OrderCreated, charge)
    stray = PaymentFailed(
        payment_id="p-1",
        order_id="o-1",
        user_id="u-1",
        amount_cents=100,
        currency="EUR",
        failure_code="card_declined",
    )
    expected = order_created()
    bus = RabbitBus(bus_vhost, POLICY)
    try:
        bus.subscribe(subscription.queue, subscription.routing_keys, subscription.consumer(None))
        # A payment.failed body under the bound key, then an event the queue does handle.
        bus.publish(
            [
                OutgoingMessage("order.created", stray.model_dump_json().encode(), "stray"),
                OutgoingMessage("order.created", expected.model_dump_json().encode(), "ok"),
            ]
        )
        wait_until(lambda: handled == [expected.event_id], timeout=20)
        [dead] = wait_until(lambda: bus.dead_letters(subscription.queue), timeout=20)
    finally:
        bus.close()

    assert (dead.message_id, dead.attempt, dead.routing_key) == ("stray", 1, "order.created")
    retries = [
        retry_queue_name(subscription.queue, n, POLICY) for n in range(2, POLICY.max_attempts + 1)
    ]
    assert queue_depths(bus_vhost, subscription.queue, *retries) == dict.fromkeys(
        [subscription.queue, *retries], 0
    )
    assert queue_depths(bus_vhost, dead_letter_queue_name(subscription.queue)) == {
        dead_letter_queue_name(subscription.queue): 1
    }
