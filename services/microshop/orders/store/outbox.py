"""The document outbox: the events an order has yet to publish, kept inside the order document,
and the relay's lease on them.

An order and its order.created event are then one atomic single-document write. Relays claim
orders with pending events by a short lease (`find_one_and_update` on `outbox_lease_until`),
so replicas relay side by side without sending an event twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ReturnDocument

from microshop.events import Event, parse_event
from microshop.orders.store.backend import DocumentBackend
from microshop.platform.bus import OutgoingMessage
from microshop.platform.clock import as_utc
from microshop.platform.outbox import to_message

RELAY_BATCH = 100
# How long a relay may hold an order's events before another replica may take them over.
OUTBOX_LEASE_SECONDS = 30.0
OUTBOX = "outbox"
LEASE = "outbox_lease_until"


def outbox_entry(event: Event, headers: dict[str, str]) -> dict[str, Any]:
    """An event as the order document's outbox holds it."""
    return {
        "event_id": event.event_id,
        "type": event.type,  # type: ignore[attr-defined]
        "payload": event.model_dump(mode="json"),
        "headers": dict(headers),
        "created_at": event.occurred_at,
    }


class DocumentOutbox:
    """The relay's source. `on_commit` is called once an order with a new event is written (the
    runtime makes it wake the relay)."""

    def __init__(self, backend: DocumentBackend) -> None:
        self.backend = backend
        self.on_commit: Callable[[], None] = lambda: None

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        """Claim orders with pending events, publish their events, then remove them."""
        docs = self.claim(RELAY_BATCH)
        messages = [
            to_message(parse_event(entry["payload"]), entry.get("headers"))
            for doc in docs
            for entry in doc[OUTBOX]
        ]
        if not messages:
            return 0
        orders = self.backend.orders
        try:
            publish(messages)
        except Exception:
            with self.backend.lock:  # let the next attempt, here or in another replica, have them
                orders.update_many(
                    {"_id": {"$in": [doc["_id"] for doc in docs]}}, {"$set": {LEASE: None}}
                )
            raise
        with self.backend.lock:
            for doc in docs:
                sent = [entry["event_id"] for entry in doc[OUTBOX]]
                orders.update_one(
                    {"_id": doc["_id"]},
                    {"$pull": {OUTBOX: {"event_id": {"$in": sent}}}, "$set": {LEASE: None}},
                )
        return len(messages)

    def claim(self, limit: int) -> list[dict[str, Any]]:
        """Lease up to `limit` orders with pending events to this relay; the orders claimed."""
        # Epoch seconds, not datetimes: the embedded stores hand datetimes back without a zone.
        now = time.time()
        claimed: list[dict[str, Any]] = []
        with self.backend.lock:
            while len(claimed) < limit:
                doc = self.backend.orders.find_one_and_update(
                    {
                        f"{OUTBOX}.0": {"$exists": True},
                        "$or": [
                            {LEASE: None},  # also matches a missing field
                            {LEASE: {"$lt": now}},  # a relay that died
                        ],
                    },
                    {"$set": {LEASE: now + OUTBOX_LEASE_SECONDS}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:
                    break
                claimed.append(doc)
        return claimed

    def backlog(self) -> tuple[int, float]:
        """How many events wait, and the age in seconds of the oldest."""
        with self.backend.lock:
            docs = list(self.backend.orders.find({f"{OUTBOX}.0": {"$exists": True}}, {OUTBOX: 1}))
        created = [as_utc(e["created_at"]) for d in docs for e in d[OUTBOX] if e.get("created_at")]
        if not created:
            return 0, 0.0
        return len(created), (datetime.now(UTC) - min(created)).total_seconds()
