"""Subscriptions by event type, as eShop's `AddSubscription<Event, Handler>`: a consumer names
the event classes (from events.py) it handles and a handler for each.

The queue's routing keys come from those classes, so a binding cannot name an event nobody
handles. A delivery of any other type (a binding left from an older version, a wrong routing
key) is an error: it raises UnhandledEvent, which the bus counts
(`microshop_events_unhandled_total`) and dead-letters at once instead of acking it unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from microshop.events import Event, event_type, parse_event
from microshop.platform.bus import Handler, IncomingMessage, UnhandledEvent

S = TypeVar("S")  # what a handler is made from: the service's store
E = TypeVar("E", bound=Event)

EventHandler = Callable[[E, dict[str, str]], None]
"""Handles one event, given the headers it came with (they carry its trace onward); returns
after its own commit, raises to have the delivery retried."""


@dataclass(frozen=True)
class Subscription(Generic[S]):
    """A queue and, for each event class it consumes, how to make its handler from a store."""

    queue: str
    handlers: Mapping[type[Event], Callable[[S], EventHandler[Any]]] = field(default_factory=dict)

    def on(self, event: type[E], handler: Callable[[S], EventHandler[E]]) -> Subscription[S]:
        """This subscription, also handling `event` with what `handler(store)` makes."""
        if event in self.handlers:
            raise ValueError(f"{self.queue} already handles {event_type(event)}")
        return Subscription(self.queue, {**self.handlers, event: handler})

    @property
    def routing_keys(self) -> tuple[str, ...]:
        return tuple(event_type(event) for event in self.handlers)

    def consumer(self, store: S) -> Handler:
        """The bus handler: decodes each delivery and hands it to the handler of its type."""
        by_type = {event_type(event): make(store) for event, make in self.handlers.items()}
        queue = self.queue

        def consume(message: IncomingMessage) -> None:
            # A malformed body raises here, so it is retried and then dead-lettered.
            event = parse_event(message.body)
            handler = by_type.get(event.type)
            if handler is None:
                raise UnhandledEvent(queue, event.type)
            handler(event, message.headers)

        return consume
