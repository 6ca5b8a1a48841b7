"""One trace across RabbitMQ's retry queue and a broker redelivery.

The trace context travels in the message headers (W3C traceparent). A failed delivery goes
through `<queue>.retry.2.<ms>`, which the adapter fills with a copy of the original headers and
the broker dead-letters back; a delivery whose consumer connection the broker closes before the
ack comes back marked redelivered. Each must still be a child of the original publish.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from microshop.platform.bus import IncomingMessage, OutgoingMessage, RetryPolicy
from microshop.platform.bus.base import ATTEMPT_HEADER
from microshop.platform.bus.instrumented import InstrumentedBus
from microshop.platform.bus.rabbit import RabbitBus
from tests.integration.test_bus_faults import queue_depths
from tests.support.polling import wait_until
from tests.unit.telemetry.test_bus_tracing import (
    assert_retried_under_publish,
    named,
    observed,
    one_trace,
    parent_id,
    span_id,
    trace_id,
)

POLICY = RetryPolicy(max_attempts=3, base_delay_seconds=0.2, max_delay_seconds=1.0)


def close_connections(vhost_url: str) -> None:
    """The broker closes every client connection of the virtual host (as a network cut or a
    crashed consumer would look to it): what they had not acked goes back to its queue."""
    ctl = shutil.which("rabbitmqctl")
    assert ctl is not None  # the bus_vhost fixture needed it too
    vhost = vhost_url.rsplit("/", 1)[1]
    subprocess.run(
        [ctl, "-q", "close_all_connections", "--vhost", vhost, "--limit", "100", "test cut"],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_a_retried_and_a_redelivered_message_stay_in_the_publishers_trace(
    spans: InMemorySpanExporter, bus_vhost: str
) -> None:
    """order.created: attempt 1 fails (→ retry queue); attempt 2 is cut off before its ack (→
    redelivered by the broker); the redelivery succeeds and publishes payment.succeeded with the
    headers it was handed, as the payments service does through its outbox."""
    buses = {name: RabbitBus(bus_vhost, POLICY) for name in ("orders", "payments", "notifications")}
    orders = InstrumentedBus(buses["orders"], observed("orders"))
    payments = InstrumentedBus(buses["payments"], observed("payments"))
    notifications = InstrumentedBus(buses["notifications"], observed("notifications"))
    deliveries: list[IncomingMessage] = []
    notified: list[IncomingMessage] = []
    in_handler, cut = threading.Event(), threading.Event()

    def charge(message: IncomingMessage) -> None:
        deliveries.append(message)
        if len(deliveries) == 1:
            raise RuntimeError("payment provider timed out")
        if len(deliveries) == 2:
            in_handler.set()  # the work is done, but the ack will never reach the broker
            cut.wait(timeout=10)
            return
        payments.publish([OutgoingMessage("payment.succeeded", b"{}", "m-2", message.headers)])

    try:
        notifications.subscribe("notifications", ["payment.succeeded"], notified.append)
        payments.subscribe("payments", ["order.created"], charge)
        orders_tracer = observed("orders").tracer
        assert orders_tracer is not None
        with orders_tracer.start_as_current_span("POST /api/v1/orders", kind=SpanKind.SERVER):
            orders.publish([OutgoingMessage("order.created", b"{}", "m-1")])

        assert in_handler.wait(timeout=10), "the retry never came back from the retry queue"
        close_connections(bus_vhost)
        # Unacked and back in the queue before the handler returns and tries to ack.
        wait_until(lambda: queue_depths(bus_vhost, "payments")["payments"] == 1)
        cut.set()
        wait_until(lambda: named(spans, "payment.succeeded process"), timeout=10)
    finally:
        cut.set()
        for bus in buses.values():
            bus.close()

    (request,) = named(spans, "POST /api/v1/orders")
    (publish,) = named(spans, "order.created publish")
    consumes = named(spans, "order.created process")
    (outcome,) = named(spans, "payment.succeeded publish")
    (notification,) = named(spans, "payment.succeeded process")
    trace = one_trace(spans, request)

    assert [(m.attempt, m.redelivered) for m in deliveries] == [(1, False), (2, False), (2, True)]
    assert parent_id(publish) == span_id(request)
    # The retry queue's copy and the broker's redelivery both carried the publish's traceparent.
    assert_retried_under_publish(consumes, publish, attempts=[1, 2, 2])
    assert [(s.attributes or {}).get("microshop.delivery.redelivered") for s in consumes] == [
        None,
        None,
        True,
    ]
    assert parent_id(outcome) == span_id(consumes[2])
    assert parent_id(notification) == span_id(outcome)
    assert trace_id(notification) == trace_id(request)
    assert len(trace) == 7
    # The event the retried delivery caused is a first delivery of its own.
    assert [(m.attempt, m.redelivered) for m in notified] == [(1, False)]
    assert notification.attributes is not None
    assert notification.attributes["messaging.delivery.attempt"] == 1
    assert ATTEMPT_HEADER not in notified[0].headers
