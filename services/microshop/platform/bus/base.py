"""The bus interface both adapters implement, and the delivery rules they share."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

ATTEMPT_HEADER = "x-microshop-attempt"


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
raises PoisonMessage to dead-letter the message without retries."""


@dataclass(frozen=True)
class RetryPolicy:
    """A failing message is retried with exponential backoff, then dead-lettered."""

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0

    def delay_before(self, attempt: int) -> float:
        """Delay before delivery number `attempt` (2 is the first retry)."""
        return min(self.base_delay_seconds * 2 ** (attempt - 2), self.max_delay_seconds)

    def gives_up(self, attempt: int, error: BaseException) -> bool:
        """True when delivery number `attempt`, failed with `error`, goes to the dead letters."""
        return isinstance(error, PoisonMessage) or attempt >= self.max_attempts


class Bus(abc.ABC):
    """Publish with confirms; consume with manual acks, bounded retries and a dead-letter queue."""

    def __init__(self, retry: RetryPolicy) -> None:
        self.retry = retry

    @abc.abstractmethod
    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        """Return only once the broker has confirmed every message; raise otherwise."""

    @abc.abstractmethod
    def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None:
        """Declare `queue` bound to `routing_keys` and start consuming it in the background."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise if the broker cannot be reached."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop consumers and close connections."""

    def dead_letters(self, queue: str) -> list[IncomingMessage]:  # pragma: no cover - optional
        """Messages dead-lettered from `queue` (for tests and operators' inspection)."""
        raise NotImplementedError


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
