"""A retried delivery and an event that waited in the outbox stay in the trace that made them.

The saga test (test_tracing.py) sees the happy path only; these drive the in-process bus behind
`InstrumentedBus` through a failed first delivery and its retry, and the SQL outbox through a
relay that publishes long after the request span ended (and after a refused first publish).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from microshop.platform import db, telemetry
from microshop.platform.bus import IncomingMessage, OutgoingMessage, RetryPolicy
from microshop.platform.bus.base import ATTEMPT_HEADER
from microshop.platform.bus.instrumented import InstrumentedBus
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.metrics import ServiceMetrics
from microshop.platform.outbox import OutboxRelay, SqlOutbox
from microshop.platform.retry import Backoff
from microshop.platform.tracing import current_trace_headers
from tests.support.events import order_created
from tests.support.outbox_schema import Outbox, PlatformTestBase
from tests.support.polling import wait_until
from tests.unit.telemetry.test_tracing import render_tree

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.05, max_delay_seconds=1.0)


def observed(service: str) -> telemetry.ServiceTelemetry:
    """What a service's runtime gives its bus: its tracer (tracing must be on) and metrics."""
    tracer = telemetry.tracer_for(service)
    assert tracer is not None, "tracing is off: use the `spans` fixture"
    return telemetry.ServiceTelemetry(service, tracer, ServiceMetrics())


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    """Finished spans called `name`, in the order they started."""
    found = [s for s in spans.get_finished_spans() if s.name == name]
    return sorted(found, key=lambda s: s.start_time or 0)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    return span.context.span_id


def trace_id(span: ReadableSpan) -> int:
    return span.context.trace_id


def one_trace(spans: InMemorySpanExporter, root: ReadableSpan) -> list[ReadableSpan]:
    """Every finished span of `root`'s trace; printed as a tree (pytest -s shows it)."""
    found = [s for s in spans.get_finished_spans() if trace_id(s) == trace_id(root)]
    print(f"\ntrace {trace_id(root):032x}\n{render_tree(found)}")
    return found


def assert_retried_under_publish(
    consumes: list[ReadableSpan], publish: ReadableSpan, attempts: list[int]
) -> None:
    """Each delivery is a consumer span in the publisher's trace, a child of its publish span;
    the first (failed) one says so."""
    assert [(s.attributes or {}).get("messaging.delivery.attempt") for s in consumes] == attempts
    for consume in consumes:
        assert consume.kind == SpanKind.CONSUMER
        assert trace_id(consume) == trace_id(publish)
        assert parent_id(consume) == span_id(publish)
    failed, *later = consumes
    assert failed.status.status_code == StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert all(s.status.status_code != StatusCode.ERROR for s in later)


@pytest.fixture
def memory() -> Iterator[MemoryBus]:
    bus = MemoryBus(FAST_RETRY)
    yield bus
    bus.close()


@pytest.mark.parametrize("carried_by", ["headers", "context"])
def test_a_failed_delivery_and_its_retry_are_children_of_the_publish(
    spans: InMemorySpanExporter, memory: MemoryBus, carried_by: str
) -> None:
    """payments fails on the first delivery of order.created and succeeds on the retry, where it
    publishes payment.succeeded: with the headers it was handed (as the services do, through
    their outbox) or from the current context."""
    orders = InstrumentedBus(memory, observed("orders"))
    payments = InstrumentedBus(memory, observed("payments"))
    notifications = InstrumentedBus(memory, observed("notifications"))
    deliveries: list[IncomingMessage] = []

    def charge(message: IncomingMessage) -> None:
        deliveries.append(message)
        if message.attempt == 1:
            raise RuntimeError("payment provider timed out")
        headers = dict(message.headers) if carried_by == "headers" else {}
        payments.publish([OutgoingMessage("payment.succeeded", b"{}", "m-2", headers)])

    notifications.subscribe("notifications", ["payment.succeeded"], lambda m: None)
    payments.subscribe("payments", ["order.created"], charge)
    orders_tracer = observed("orders").tracer
    assert orders_tracer is not None
    with orders_tracer.start_as_current_span("POST /api/v1/orders", kind=SpanKind.SERVER):
        orders.publish([OutgoingMessage("order.created", b"{}", "m-1")])

    (notified,) = wait_until(lambda: named(spans, "payment.succeeded process"))
    (request,) = named(spans, "POST /api/v1/orders")
    (publish,) = named(spans, "order.created publish")
    consumes = named(spans, "order.created process")
    (outcome,) = named(spans, "payment.succeeded publish")
    trace = one_trace(spans, request)

    assert [m.attempt for m in deliveries] == [1, 2]
    assert parent_id(publish) == span_id(request)
    assert_retried_under_publish(consumes, publish, attempts=[1, 2])
    # What the successful attempt publishes is its child, not a sibling of the retried delivery.
    assert parent_id(outcome) == span_id(consumes[1])
    assert parent_id(notified) == span_id(outcome)
    assert len(trace) == 6  # request, publish, two deliveries, outcome publish, notification


def test_an_event_that_waited_in_the_outbox_is_published_in_the_request_trace(
    spans: InMemorySpanExporter, memory: MemoryBus, tmp_path: Path
) -> None:
    """The request commits the event with its trace headers and ends; the relay thread (no
    context of its own) is refused while no queue is bound, then publishes once one is."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'orders.db'}")
    PlatformTestBase.metadata.create_all(engine)
    sessions = db.make_session_factory(engine)
    outbox = SqlOutbox(sessions, Outbox)
    orders_tracer = observed("orders").tracer
    assert orders_tracer is not None
    event = order_created()
    with (
        orders_tracer.start_as_current_span("POST /api/v1/orders", kind=SpanKind.SERVER),
        sessions.begin() as session,
    ):
        outbox.add(session, event, headers=current_trace_headers())
    (request,) = named(spans, "POST /api/v1/orders")
    assert spans.get_finished_spans() == (request,)  # nothing published inside the request

    relay = OutboxRelay(
        outbox,
        InstrumentedBus(memory, observed("orders")),
        poll_seconds=0.02,
        backoff=Backoff(first_seconds=0.04, max_seconds=1.0),
    )
    relay.start()
    received = threading.Event()
    try:
        refused = wait_until(lambda: named(spans, "order.created publish"))
        assert refused[0].status.status_code == StatusCode.ERROR  # Unroutable: it stays put
        InstrumentedBus(memory, observed("payments")).subscribe(
            "payments", ["order.created"], lambda m: received.set()
        )
        (consume,) = wait_until(lambda: named(spans, "order.created process"), timeout=15)
    finally:
        relay.stop()
        engine.dispose()

    assert received.is_set()
    publishes = named(spans, "order.created publish")
    one_trace(spans, request)
    assert len(publishes) >= 2
    for publish in publishes:
        assert trace_id(publish) == trace_id(request)
        assert parent_id(publish) == span_id(request)
        assert publish.start_time is not None and request.end_time is not None
        assert publish.start_time > request.end_time
    *failed, sent = publishes
    assert all(s.status.status_code == StatusCode.ERROR for s in failed)
    assert sent.status.status_code != StatusCode.ERROR
    assert parent_id(consume) == span_id(sent)
    assert consume.attributes["messaging.message.id"] == event.event_id


@pytest.mark.parametrize("tracing", ["on", "off"])
def test_a_handler_is_handed_the_events_headers_not_its_deliverys(
    memory: MemoryBus, tracing: str, request: pytest.FixtureRequest
) -> None:
    """RabbitMQ hands a retried delivery our attempt count and its own dead-letter history;
    a handler that passes its headers on (payments does) must not give them to the next event,
    whose first delivery would otherwise count as a retry."""
    if tracing == "on":
        request.getfixturevalue("spans")
    service = telemetry.ServiceTelemetry(
        "payments", telemetry.tracer_for("payments"), ServiceMetrics()
    )
    assert (service.tracer is not None) == (tracing == "on")
    handed: list[IncomingMessage] = []
    InstrumentedBus(memory, service).subscribe("payments", ["order.created"], handed.append)
    delivery = {
        ATTEMPT_HEADER: "2",
        "x-death": "[{'count': 1, 'reason': 'expired', 'queue': 'payments.retry.2.500ms'}]",
        "x-first-death-queue": "payments.retry.2.500ms",
        "x-first-death-reason": "expired",
        "x-last-death-queue": "payments.retry.2.500ms",
    }
    memory.publish(
        [OutgoingMessage("order.created", b"{}", "m-1", {"x-request-id": "r-1", **delivery})]
    )

    (message,) = wait_until(lambda: handed)
    assert message.headers.pop("x-request-id") == "r-1"
    assert set(message.headers) == ({"traceparent"} if tracing == "on" else set())
