"""The message bus behind one interface: RabbitMQ (pika) or an in-process bus, chosen by URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from microshop.platform.bus.base import (
    Bus,
    Handler,
    IncomingMessage,
    OutgoingMessage,
    PoisonMessage,
    RetryPolicy,
    UnhandledEvent,
    Unroutable,
    topic_matches,
)
from microshop.platform.retry import BUS_RECONNECT, Backoff

if TYPE_CHECKING:
    from microshop.platform.telemetry import ServiceTelemetry


def connect_bus(
    url: str,
    retry: RetryPolicy | None = None,
    telemetry: ServiceTelemetry | None = None,
    reconnect: Backoff = BUS_RECONNECT,
    consumers: int = 1,
) -> Bus:
    """`amqp://…` → RabbitMQ; `memory://` → the in-process bus (standalone mode, unit tests).

    With `telemetry`, the service's view of the bus makes its spans and event metrics;
    `reconnect` is how RabbitMQ consumers back off between reconnects, `consumers` how many
    consume each of its queues side by side.
    """
    bus = _connect(url, retry or RetryPolicy(), reconnect, consumers)
    if telemetry is None:
        return bus
    from microshop.platform.bus.instrumented import InstrumentedBus

    return InstrumentedBus(bus, telemetry)


def _connect(url: str, retry: RetryPolicy, reconnect: Backoff, consumers: int) -> Bus:
    if url.startswith(("amqp://", "amqps://")):
        from microshop.platform.bus.rabbit import RabbitBus

        return RabbitBus(url, retry, reconnect, consumers)
    if url.startswith("memory://"):
        from microshop.platform.bus.memory import shared_memory_bus

        return shared_memory_bus(url, retry, consumers)
    raise ValueError(f"unsupported bus URL {url!r}: use amqp://… or memory://")


__all__ = [
    "Bus",
    "Handler",
    "IncomingMessage",
    "OutgoingMessage",
    "PoisonMessage",
    "RetryPolicy",
    "UnhandledEvent",
    "Unroutable",
    "connect_bus",
    "topic_matches",
]
