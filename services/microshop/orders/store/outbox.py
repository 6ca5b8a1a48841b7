"""The document outbox: the events an order has yet to publish, kept inside the order document,
and the relay's lease on them.

An order and its order.created event are then one atomic single-document write. An order with
events to publish carries `outbox_relay_after` (epoch seconds: 0 when new, the lease's end
while a relay holds it), indexed sparsely, so the relay's scan reads only the index entries of
orders with work and costs the same with 10 or 10 million settled orders. A relay claims a
batch by one update of the candidates that re-checks `outbox_relay_after`, stamps its own
`outbox_lease` token, and reads back what it won; after publishing, one update clears them all.
Replicas thus relay side by side without sending an event twice.
"""

from __future__ import annotations

import time
from typing import Any

import pymongo

from microshop.events import Event, parse_event
from microshop.orders.store.backend import DocumentBackend
from microshop.orders.store.base import OUTBOX_LEASE_SECONDS, Claim, LeasedOutbox
from microshop.platform.bus import OutgoingMessage
from microshop.platform.clock import as_utc
from microshop.platform.outbox import to_message

OUTBOX = "outbox"
RELAY_AFTER = "outbox_relay_after"
LEASE = "outbox_lease"


def outbox_entry(event: Event, headers: dict[str, str]) -> dict[str, Any]:
    """An event as the order document's outbox holds it."""
    return {
        "event_id": event.event_id,
        "type": event.type,  # type: ignore[attr-defined]
        "payload": event.model_dump(mode="json"),
        "headers": dict(headers),
        "created_at": event.occurred_at,
    }


def pending() -> dict[str, Any]:
    """The fields of an order with an event to publish: any relay may take it now."""
    return {RELAY_AFTER: 0.0}


def add_event(entry: dict[str, Any]) -> dict[str, Any]:
    """The update that adds an event to an existing order's outbox.

    It makes the order pending again and drops any relay's lease on it, so a relay clearing an
    earlier claim of the order (its filter names its lease token) leaves the new event pending;
    that relay's events are then sent once more, which consumers dedupe by event id."""
    return {"$push": {OUTBOX: entry}, "$set": pending(), "$unset": {LEASE: ""}}


class DocumentOutbox(LeasedOutbox):
    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__()
        self.backend = backend

    def create_indexes(self) -> None:
        orders = self.backend.orders
        orders.create_index([(RELAY_AFTER, pymongo.ASCENDING)], sparse=True)
        # Orders written before the relay scan was indexed: make their pending events visible.
        orders.update_many(
            {f"{OUTBOX}.0": {"$exists": True}, RELAY_AFTER: {"$exists": False}},
            {"$set": pending()},
        )

    def new_event_fields(self) -> dict[str, Any]:
        """The fields of a new order with its first event: leased to this process's relay,
        which `handed_over` then gives it to, or pending for any relay."""
        if self.hand_over_lease():
            return {RELAY_AFTER: time.time() + OUTBOX_LEASE_SECONDS, LEASE: self.token}
        return pending()

    def written(self, doc: dict[str, Any], message: OutgoingMessage) -> None:
        """The new order `doc` (with new_event_fields) and its event are written: the event is
        handed over if it was leased to this process."""
        if doc.get(LEASE) == self.token:
            self.hand_over(doc["_id"], message.message_id, message)
        self.on_commit()

    def claim_stored(self, limit: int) -> Claim:
        # Epoch seconds, not datetimes: comparable on every backend without a time zone.
        now = time.time()
        claim = Claim()
        orders = self.backend.orders
        with self.backend.lock:
            candidates = [
                doc["_id"]
                for doc in orders.find({RELAY_AFTER: {"$lte": now}}, {"_id": 1}).limit(limit)
            ]
            if not candidates:
                return claim
            orders.update_many(
                {"_id": {"$in": candidates}, RELAY_AFTER: {"$lte": now}},
                {"$set": {RELAY_AFTER: now + OUTBOX_LEASE_SECONDS, LEASE: claim.token}},
            )
            won = list(orders.find({"_id": {"$in": candidates}, LEASE: claim.token}, {OUTBOX: 1}))
        for doc in won:
            claim.keys.append(doc["_id"])
            for entry in doc[OUTBOX]:
                claim.event_ids.append(entry["event_id"])
                claim.messages.append(to_message(parse_event(entry["payload"]), entry["headers"]))
        return claim

    def release(self, claim: Claim) -> None:
        with self.backend.lock:
            self.backend.orders.update_many(
                {"_id": {"$in": claim.keys}, LEASE: claim.token},
                {"$set": pending(), "$unset": {LEASE: ""}},
            )

    def clear(self, claim: Claim) -> None:
        # Best effort: an event whose clearing is lost is published once more, and deduped.
        with self.backend.lock:
            self.backend.orders_best_effort.update_many(
                {"_id": {"$in": claim.keys}, LEASE: claim.token},
                {
                    "$pull": {OUTBOX: {"event_id": {"$in": claim.event_ids}}},
                    "$unset": {RELAY_AFTER: "", LEASE: ""},
                },
            )

    def backlog(self) -> tuple[int, float]:
        with self.backend.lock:
            docs = list(self.backend.orders.find({RELAY_AFTER: {"$gte": 0}}, {OUTBOX: 1}))
        created = [as_utc(e["created_at"]) for d in docs for e in d[OUTBOX] if e.get("created_at")]
        if not created:
            return 0, 0.0
        return len(created), time.time() - min(created).timestamp()
