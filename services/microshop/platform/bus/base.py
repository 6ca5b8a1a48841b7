"""The bus interface both adapters implement, and the delivery rules they share."""

from __future__ import annotations

import abc
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from microshop.platform.failures import infrastructure_failure
from microshop.platform.retry import CONSUMER_PROBE, Backoff, Stopped, until_stopped

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-microshop-attempt"
# What a retried or dead-lettered message carries about why (`microshop-service dead-letters`).
FIRST_ERROR_HEADER = "x-microshop-first-error"
LAST_ERROR_HEADER = "x-microshop-last-error"
DEAD_REASON_HEADER = "x-microshop-dead-reason"
# The bookkeeping headers a replayed dead letter starts afresh without.
DELIVERY_HEADERS = (ATTEMPT_HEADER, FIRST_ERROR_HEADER, LAST_ERROR_HEADER, DEAD_REASON_HEADER)


def failure_headers(headers: dict[str, str], error: BaseException, dead: bool) -> dict[str, str]:
    """`headers` with the failure recorded: the first error kept, the last one replaced, and
    on a dead letter why it gave up."""
    text = f"{type(error).__name__}: {error}"[:500]
    recorded = {**headers, LAST_ERROR_HEADER: text}
    recorded.setdefault(FIRST_ERROR_HEADER, text)
    if dead:
        recorded[DEAD_REASON_HEADER] = (
            "unhandled event type"
            if isinstance(error, UnhandledEvent)
            else "poison message"
            if isinstance(error, PoisonMessage)
            else "tries exhausted"
        )
    return recorded


@dataclass(frozen=True)
class OutgoingMessage:
    routing_key: str
    body: bytes
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IncomingMessage:
    routing_key: str
    body: bytes
    message_id: str
    headers: dict[str, str]
    attempt: int  # 1 on first delivery, then 2, 3… on retries
    redelivered: bool = False


class Unroutable(Exception):
    """No queue is bound for the message yet; the publisher keeps it and tries again later."""


class PoisonMessage(Exception):
    """Raised by a handler for a delivery no retry can fix: the bus dead-letters it at once."""


class UnhandledEvent(PoisonMessage):
    """A delivery of an event type that the queue's consumer has no handler for."""

    def __init__(self, queue: str, event_type: str) -> None:
        super().__init__(f"{queue} has no handler for {event_type!r} events")
        self.queue, self.event_type = queue, event_type


Handler = Callable[[IncomingMessage], None]
"""Returns after the consumer's own commit (the message is then acked); raises to retry, or
raises PoisonMessage to dead-letter the message without retries. A failure of the
infrastructure (failures.py: its database unreachable, a timeout, a failover) is no try: the
queue's consumer pauses instead, and the message is delivered again once the probe answers."""

Probe = Callable[[], None]
"""Raises while what a queue's handler needs (its database) does not answer."""


@dataclass(frozen=True)
class RetryPolicy:
    """A failing message is retried with exponential backoff, then dead-lettered."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    # While paused by an infrastructure failure, how a consumer probes before resuming.
    probe: Backoff = CONSUMER_PROBE

    def delay_before(self, attempt: int) -> float:
        """Delay before delivery number `attempt` (2 is the first retry)."""
        return min(self.base_delay_seconds * 2 ** (attempt - 2), self.max_delay_seconds)

    def gives_up(self, attempt: int, error: BaseException) -> bool:
        """True when delivery number `attempt`, failed with `error`, goes to the dead letters."""
        return isinstance(error, PoisonMessage) or attempt >= self.max_attempts


class Pauses:
    """Which of a bus's consumers are paused, and why; and the wait until each may resume."""

    def __init__(self) -> None:
        self._reasons: dict[str, str] = {}
        # Consumers holding each queue: several may consume one queue (RabbitBus.consumers),
        # and it is paused until the last of them resumes.
        self._holding: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reasons)

    def hold(
        self,
        queue: str,
        reason: str,
        error: BaseException,
        probe: Probe,
        backoff: Backoff,
        stopping: threading.Event,
    ) -> None:
        """Mark `queue` paused for `reason` and block until `probe` passes (with `backoff`,
        the first probe after one wait), or raise retry.Stopped once `stopping` is set."""
        with self._lock:
            self._reasons[queue] = reason
            self._holding[queue] += 1
        log.warning(
            "consumer paused (%s): %r; the message is not counted as a try",
            reason,
            error,
            extra={"queue": queue},
        )
        try:
            if stopping.wait(backoff.first_seconds):
                raise Stopped
            until_stopped(backoff, stopping, log, f"consumer {queue}: probe")(probe)
        finally:
            with self._lock:
                self._holding[queue] -= 1
                if not self._holding[queue]:
                    del self._holding[queue]
                    self._reasons.pop(queue, None)
        log.warning("consumer resumed", extra={"queue": queue})


def _no_probe() -> None:
    """Without a probe, the message itself is the probe: it is tried again after each wait."""


class Bus(abc.ABC):
    """Publish with confirms; consume with manual acks, bounded retries and a dead-letter queue.

    A consumer whose handler fails because its infrastructure does (failures.py) pauses: the
    delivery goes back unacknowledged and uncounted, nothing more is taken from the queue, and
    consumption resumes by itself once the subscription's probe answers.
    """

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry
        self.paused = Pauses()

    @abc.abstractmethod
    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Return only once the broker has confirmed every message; raise otherwise."""

    @abc.abstractmethod
    def subscribe(
        self,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        probe: Probe = _no_probe,
    ) -> None:
        """Declare `queue` bound to `routing_keys` and start consuming it in the background;
        `probe` says when a consumer paused by an infrastructure failure may resume."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the broker cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop consumers and close connections."""

    def dead_letters(self, queue: str) -> list[IncomingMessage]:  # pragma: no cover - optional
        """Messages dead-lettered from `queue` (for tests and operators' inspection)."""
        raise NotImplementedError

    def dead_letter_depths(self) -> dict[str, int]:
        """Messages in the dead-letter queue of each queue this bus consumes (as last seen)."""
        return {}


def infrastructure_reason(error: BaseException) -> str | None:
    """Why `error` is no try of the message (the infrastructure failed), or None."""
    if isinstance(error, PoisonMessage):
        return None
    return infrastructure_failure(error)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` is zero or more words."""

    def match(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(pattern.split("."), routing_key.split("."))
