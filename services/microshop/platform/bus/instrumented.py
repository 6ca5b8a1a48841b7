"""The bus as every service uses it: any adapter, wrapped with spans and event metrics.

A wrapper around the `Bus` interface rather than an instrumentation of pika: it sees both
adapters alike, it knows where an event's trace context comes from (the headers stored with an
outbox row, published later by a relay thread that has no context of its own), and the one
pika instrumentation package would trace our retry and dead-letter re-publishes as new sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from microshop.platform.bus.base import (
    DELIVERY_HEADERS,
    Bus,
    Handler,
    IncomingMessage,
    OutgoingMessage,
    Probe,
    RetryPolicy,
    UnhandledEvent,
    _no_probe,
    infrastructure_reason,
)
from microshop.platform.context import service_var
from microshop.platform.telemetry import ServiceTelemetry, inject_into


class InstrumentedBus(Bus):
    """Producer spans that are children of the context an event carries (else of the current
    span), consumer spans that are children of the context in the message, and counts of events
    published, consumed, retried and dead-lettered by type."""

    def __init__(self, inner: Bus, telemetry: ServiceTelemetry) -> None:
        self.inner, self.telemetry = inner, telemetry
        super().__init__(inner.retry)
        self.paused = inner.paused
        telemetry.metrics.watch_consumers(self.paused, inner.dead_letter_depths)

    @property
    def retry(self) -> RetryPolicy:
        """The adapter's policy: it is the one that retries and dead-letters."""
        return self.inner.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self.inner.retry = policy

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        tracer = self.telemetry.tracer
        if tracer is None:
            self.inner.publish(messages)
        else:
            spans, traced = [], []
            for message in messages:
                # An outbox event carries the context of the change that made it: the publish
                # belongs to that trace, however long the event waited.
                parent = (
                    propagate.extract(message.headers)
                    if "traceparent" in message.headers
                    else otel_context.get_current()
                )
                span = tracer.start_span(
                    f"{message.routing_key} publish",
                    context=parent,
                    kind=SpanKind.PRODUCER,
                    attributes=_attributes(message.routing_key, message.message_id),
                )
                spans.append(span)
                with trace.use_span(span, end_on_exit=False):
                    headers = inject_into(message.headers)
                traced.append(dataclasses.replace(message, headers=headers))
            try:
                self.inner.publish(traced)
            except Exception as exc:
                for span in spans:
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    span.end()
                raise
            for span in spans:
                span.end()
        for message in messages:
            self.telemetry.metrics.events_published.labels(message.routing_key).inc()

    def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        probe: Probe = _no_probe,
    ) -> None:
        self.inner.subscribe(queue, routing_keys, self._observed(queue, handler), probe)

    def _observed(self, queue: str, handler: Handler) -> Handler:
        telemetry, metrics = self.telemetry, self.telemetry.metrics

        def handle(message: IncomingMessage) -> None:
            event_type = message.routing_key
            token = service_var.set(telemetry.service)
            # Handlers pass their message's headers on to the events they cause: those must not
            # inherit this delivery's bookkeeping, or an event caused by a retry would start at
            # that retry's attempt (and reach the dead-letter queue sooner).
            carried = _carried(message.headers)
            try:
                if telemetry.tracer is None:
                    handler(dataclasses.replace(message, headers=carried))
                else:
                    # Every delivery, first, retried or redelivered, is a child of the publish;
                    # what the handler produces carries this consume span's context onward.
                    attributes: dict[str, AttributeValue] = {
                        **_attributes(event_type, message.message_id),
                        "messaging.destination.subscription.name": queue,
                        "messaging.delivery.attempt": message.attempt,
                    }
                    if message.redelivered:
                        # RabbitMQ: an earlier delivery of this attempt was never acked (the
                        # in-process bus marks every retry so).
                        attributes["microshop.delivery.redelivered"] = True
                    with telemetry.tracer.start_as_current_span(
                        f"{event_type} process",
                        context=propagate.extract(message.headers),
                        kind=SpanKind.CONSUMER,
                        attributes=attributes,
                    ):
                        handler(dataclasses.replace(message, headers=inject_into(carried)))
            except Exception as exc:
                if isinstance(exc, UnhandledEvent):
                    metrics.events_unhandled.labels(exc.event_type).inc()
                if infrastructure_reason(exc) is not None:
                    pass  # no try: the consumer pauses and delivers it again
                elif self.retry.gives_up(message.attempt, exc):
                    metrics.events_dead_lettered.labels(event_type).inc()
                else:
                    metrics.events_retried.labels(event_type).inc()
                raise
            finally:
                service_var.reset(token)
            metrics.events_consumed.labels(event_type).inc()

        return handle

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def dead_letters(self, queue: str) -> list[IncomingMessage]:
        return self.inner.dead_letters(queue)

    def dead_letter_depths(self) -> dict[str, int]:
        return self.inner.dead_letter_depths()


# What an adapter or the broker adds to one delivery: our attempt count and errors, and RabbitMQ's
# dead-letter history (from the retry queues) in x-death and x-first-/x-last-death-*.
_DELIVERY_HEADERS = frozenset({*DELIVERY_HEADERS, "x-death"})
_DELIVERY_HEADER_PREFIXES = ("x-first-death-", "x-last-death-")


def _carried(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers an event passes on to what it causes: its own, not its delivery's."""
    return {
        k: v
        for k, v in headers.items()
        if k not in _DELIVERY_HEADERS and not k.startswith(_DELIVERY_HEADER_PREFIXES)
    }


def _attributes(routing_key: str, message_id: str) -> dict[str, str]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": routing_key,
        "messaging.message.id": message_id,
    }
