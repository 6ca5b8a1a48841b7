"""The in-process bus: RabbitMQ's interface and delivery rules, for standalone mode and tests."""

from __future__ import annotations

import logging
import queue as queue_module
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from microshop.platform.bus.base import (
    Bus,
    Handler,
    IncomingMessage,
    OutgoingMessage,
    Probe,
    RetryPolicy,
    Unroutable,
    _no_probe,
    failure_headers,
    infrastructure_reason,
    topic_matches,
)
from microshop.platform.retry import Stopped

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Queue:
    name: str
    routing_keys: tuple[str, ...]
    handler: Handler
    probe: Probe = _no_probe
    items: queue_module.Queue[object] = field(default_factory=queue_module.Queue)
    dead: list[IncomingMessage] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)


class MemoryBus(Bus):
    """Messages live in memory only: what is not yet consumed is lost when the process ends.

    That is acceptable where it is used (one standalone process, where the outbox, not the bus,
    is the durable record: a restart republishes everything not yet confirmed).

    Each queue has `consumers` threads taking its messages side by side, as RabbitMQ's
    consumers do (and so two events of one order may be handled in either order there too):
    while one handler waits for its commit, the next message is being handled, and a store
    that commits its callers' writes together (orders/store/sqlite.py) gets several at once.
    """

    def __init__(self, retry: RetryPolicy, consumers: int = 1) -> None:
        super().__init__(retry)
        self.consumers = consumers
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self._timers: set[threading.Timer] = set()
        self._closed = False
        self._stopping = threading.Event()
        self._users = 1  # services in one process share a bus: the last one to close closes it

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")
        with self._lock:
            queues = list(self._queues.values())
        for message in messages:
            targets = [
                q
                for q in queues
                if any(topic_matches(p, message.routing_key) for p in q.routing_keys)
            ]
            if not targets:
                # Like a mandatory publish to RabbitMQ: the caller keeps the event and retries.
                raise Unroutable(f"no queue is bound for {message.routing_key!r} yet")
            for q in targets:
                q.items.put(
                    IncomingMessage(
                        routing_key=message.routing_key,
                        body=message.body,
                        message_id=message.message_id,
                        headers=dict(message.headers),
                        attempt=1,
                    )
                )

    def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        probe: Probe = _no_probe,
    ) -> None:
        q = _Queue(queue, tuple(routing_keys), handler, probe)
        with self._lock:
            if queue in self._queues:
                raise ValueError(f"queue {queue!r} already has a consumer")
            self._queues[queue] = q
        q.threads = [
            threading.Thread(target=self._consume, args=(q,), name=f"bus-{queue}-{n}", daemon=True)
            for n in range(1, self.consumers + 1)
        ]
        for thread in q.threads:
            thread.start()

    def _consume(self, q: _Queue) -> None:
        while True:
            item = q.items.get()
            if item is _STOP:
                return
            assert isinstance(item, IncomingMessage)
            if not self._deliver(q, item):
                return

    def _deliver(self, q: _Queue, message: IncomingMessage) -> bool:
        """Handle one message; False if the bus closed while its consumer was paused."""
        while True:
            try:
                q.handler(message)
                return True
            except Exception as exc:
                reason = infrastructure_reason(exc)
                if reason is None:
                    self._retry_or_dead_letter(q, message, exc)
                    return True
                # Its database is away: hold this message (uncounted) and take no other until
                # the probe answers, then deliver it again.
                try:
                    self.paused.hold(q.name, reason, exc, q.probe, self.retry.probe, self._stopping)
                except Stopped:
                    return False
                message = replace(message, redelivered=True)

    def _retry_or_dead_letter(self, q: _Queue, message: IncomingMessage, error: Exception) -> None:
        if self.retry.gives_up(message.attempt, error):
            log.error(
                "dead-lettering message after %d attempts: %s",
                message.attempt,
                error,
                extra={"queue": q.name, "message_id": message.message_id},
            )
            q.dead.append(
                replace(message, headers=failure_headers(dict(message.headers), error, dead=True))
            )
            return
        attempt = message.attempt + 1
        log.warning(
            "handler failed; retrying",
            exc_info=True,
            extra={"queue": q.name, "message_id": message.message_id, "attempt": attempt},
        )
        retry = IncomingMessage(
            message.routing_key,
            message.body,
            message.message_id,
            failure_headers(dict(message.headers), error, dead=False),
            attempt,
            True,
        )

        def deliver() -> None:
            with self._lock:
                self._timers.discard(timer)
            q.items.put(retry)

        timer = threading.Timer(self.retry.delay_before(attempt), deliver)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def ping(self) -> None:
        if self._closed:
            raise RuntimeError("bus is closed")

    def dead_letters(self, queue: str) -> list[IncomingMessage]:
        return list(self._queues[queue].dead)

    def dead_letter_depths(self) -> dict[str, int]:
        with self._lock:
            return {name: len(q.dead) for name, q in self._queues.items()}

    def close(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            self._closed = True
            self._stopping.set()
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
        for q in self._queues.values():
            for _ in q.threads:
                q.items.put(_STOP)
        for q in self._queues.values():
            for thread in q.threads:
                thread.join(timeout=5)


_shared: dict[str, MemoryBus] = {}
_shared_lock = threading.Lock()


def shared_memory_bus(url: str, retry: RetryPolicy, consumers: int = 1) -> Bus:
    """Services in one process that name the same `memory://NAME` URL share one bus (with the
    retry policy and consumers per queue of the first)."""
    with _shared_lock:
        bus = _shared.get(url)
        if bus is None or bus._closed:
            bus = _shared[url] = MemoryBus(retry, consumers)
        else:
            with bus._lock:
                bus._users += 1
        return bus


def forget_shared_buses() -> None:
    """Close and drop every shared in-process bus (standalone shutdown, tests)."""
    with _shared_lock:
        for bus in _shared.values():
            bus._users = 1
            bus.close()
        _shared.clear()
