"""The in-process bus keeps RabbitMQ's delivery rules: topic routing, mandatory publishes,
bounded retries with backoff, a dead-letter list, and one bus shared by a process's services."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from microshop.platform.bus import (
    IncomingMessage,
    OutgoingMessage,
    RetryPolicy,
    Unroutable,
    connect_bus,
    topic_matches,
)
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.settings import DatabaseSettings
from tests.support.polling import wait_until
from tests.unit.platform.conftest import FAST_RETRY


@pytest.mark.parametrize(
    ("pattern", "routing_key", "matches"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.updated", False),
        ("order.*", "order.created", True),
        ("*.created", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.created.v2", False),
        ("*", "order", True),
        ("*", "order.created", False),
        ("#", "order.created", True),
        ("#", "order", True),
        ("order.#", "order", True),
        ("order.#", "order.created.v2", True),
        ("order.#", "payment.created", False),
        ("#.failed", "payment.failed", True),
        ("#.failed", "failed", True),
        ("#.failed", "payment.failed.late", False),
        ("payment.#.late", "payment.failed.late", True),
        ("payment.#.late", "payment.late", True),
        ("payment.*.late", "payment.late", False),
        ("payment", "payment.failed", False),
    ],
)
def test_topic_matches_like_an_amqp_topic_exchange(
    pattern: str, routing_key: str, matches: bool
) -> None:
    assert topic_matches(pattern, routing_key) is matches


def message(routing_key: str, message_id: str = "m-1", **headers: str) -> OutgoingMessage:
    return OutgoingMessage(routing_key, b'{"hello": "bus"}', message_id, dict(headers))


class Recorder:
    """A handler that records what it saw and when, failing the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.seen: list[tuple[float, IncomingMessage]] = []
        self._lock = threading.Lock()

    def __call__(self, incoming: IncomingMessage) -> None:
        with self._lock:
            self.seen.append((time.monotonic(), incoming))
            calls = len(self.seen)
        if calls <= self.failures:
            raise RuntimeError(f"handler failure #{calls}")

    def ids(self) -> list[str]:
        return [m.message_id for _, m in self.seen]


def test_publish_reaches_only_the_queues_bound_to_its_routing_key(memory_bus: MemoryBus) -> None:
    orders, payments, everything = Recorder(), Recorder(), Recorder()
    memory_bus.subscribe("orders", ["payment.*"], orders)
    memory_bus.subscribe("payments", ["order.created"], payments)
    memory_bus.subscribe("audit", ["#"], everything)

    memory_bus.publish([message("order.created", "o-1"), message("payment.failed", "p-1")])

    wait_until(lambda: len(everything.seen) == 2)
    wait_until(lambda: orders.ids() == ["p-1"] and payments.ids() == ["o-1"])
    _, delivered = payments.seen[0]
    assert (delivered.routing_key, delivered.body, delivered.attempt) == (
        "order.created",
        b'{"hello": "bus"}',
        1,
    )


def test_publish_with_no_bound_queue_is_unroutable(memory_bus: MemoryBus) -> None:
    with pytest.raises(Unroutable):
        memory_bus.publish([message("order.created")])

    memory_bus.subscribe("orders", ["payment.*"], Recorder())
    with pytest.raises(Unroutable):
        memory_bus.publish([message("order.created")])


def test_a_failing_handler_is_retried_with_growing_delays_then_dead_lettered(
    memory_bus: MemoryBus,
) -> None:
    poison = Recorder(failures=1_000)
    memory_bus.subscribe("payments", ["order.created"], poison)

    memory_bus.publish([message("order.created", "poison", trace="t-1")])

    dead = wait_until(lambda: memory_bus.dead_letters("payments"))
    assert [m.attempt for _, m in poison.seen] == list(range(1, FAST_RETRY.max_attempts + 1))
    assert [m.redelivered for _, m in poison.seen] == [False, True, True]
    times = [t for t, _ in poison.seen]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    for attempt, waited in enumerate(waits, start=2):
        assert waited >= FAST_RETRY.delay_before(attempt) * 0.9, (attempt, waits)
    assert waits[1] > waits[0]
    # Its own headers, and why it was given up (what `microshop-service dead-letters` shows).
    assert [(m.message_id, m.body, m.headers) for m in dead] == [
        (
            "poison",
            b'{"hello": "bus"}',
            {
                "trace": "t-1",
                "x-microshop-first-error": "RuntimeError: handler failure #1",
                "x-microshop-last-error": "RuntimeError: handler failure #3",
                "x-microshop-dead-reason": "tries exhausted",
            },
        )
    ]


def test_a_handler_that_recovers_is_not_dead_lettered(memory_bus: MemoryBus) -> None:
    flaky = Recorder(failures=1)
    memory_bus.subscribe("payments", ["order.created"], flaky)

    memory_bus.publish([message("order.created", "flaky")])

    wait_until(lambda: len(flaky.seen) == 2)
    assert [m.attempt for _, m in flaky.seen] == [1, 2]
    assert memory_bus.dead_letters("payments") == []


def test_a_handled_message_is_not_delivered_again() -> None:
    # No backoff at all, so a wrongly scheduled retry would land before the marker message.
    bus = MemoryBus(RetryPolicy(max_attempts=3, base_delay_seconds=0.0))
    try:
        handler = Recorder()
        bus.subscribe("payments", ["order.created"], handler)

        bus.publish([message("order.created", "first")])
        wait_until(lambda: handler.ids() == ["first"])
        bus.publish([message("order.created", "marker")])
        wait_until(lambda: "marker" in handler.ids())

        assert handler.ids() == ["first", "marker"]
    finally:
        bus.close()


def test_services_in_one_process_share_a_bus_until_the_last_one_closes(bus_url: str) -> None:
    first, second = connect_bus(bus_url, FAST_RETRY), connect_bus(bus_url, FAST_RETRY)
    assert first is second
    handler = Recorder()
    second.subscribe("notifications", ["payment.succeeded"], handler)

    first.close()
    second.ping()
    second.publish([message("payment.succeeded", "after-first-close")])
    wait_until(lambda: handler.ids() == ["after-first-close"])

    second.close()
    with pytest.raises(RuntimeError):
        second.ping()
    with pytest.raises(RuntimeError):
        second.publish([message("payment.succeeded")])
    reopened = connect_bus(bus_url, FAST_RETRY)
    try:
        assert reopened is not first
        reopened.ping()
    finally:
        reopened.close()


@pytest.mark.parametrize("consumers", [1, 3])
def test_a_queue_has_its_consumers_side_by_side_and_close_stops_them_all(
    bus_url: str, consumers: int
) -> None:
    """As on RabbitMQ (MICROSHOP_CONSUMERS_PER_QUEUE): while one handler waits, say for its
    commit, the queue's next message is being handled by another consumer."""
    bus = connect_bus(bus_url, FAST_RETRY, consumers=consumers)
    assert isinstance(bus, MemoryBus)
    in_flight = threading.Semaphore(0)
    release = threading.Event()
    most = 0
    lock = threading.Lock()
    handling = 0

    def handler(_message: IncomingMessage) -> None:
        nonlocal most, handling
        with lock:
            handling += 1
            most = max(most, handling)
        in_flight.release()
        release.wait(10)
        with lock:
            handling -= 1

    bus.subscribe("payments", ["order.created"], handler)
    bus.publish([message("order.created") for _ in range(consumers + 2)])
    for _ in range(consumers):
        assert in_flight.acquire(timeout=10)
    assert not in_flight.acquire(timeout=0.2)  # the others wait for a free consumer
    assert most == consumers
    release.set()
    for _ in range(2):
        assert in_flight.acquire(timeout=10)
    threads = bus._queues["payments"].threads
    assert len(threads) == consumers
    bus.close()
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.parametrize(
    ("bus_url", "configured", "consumers"),
    [
        ("memory://", None, 16),  # cheap threads, and SQLite's group commit wants many
        ("amqp://guest:guest@127.0.0.1:5672/%2F", None, 4),  # a connection each
        ("memory://", 2, 2),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", 8, 8),
    ],
)
def test_consumers_per_queue_default_to_the_buss_own(
    bus_url: str, configured: int | None, consumers: int
) -> None:
    settings = DatabaseSettings(bus_url=bus_url, consumers_per_queue=configured)
    assert settings.consumers() == consumers
