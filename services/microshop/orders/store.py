"""The orders database through the pymongo API: MongoDB, or an embedded pymongo-compatible store.

Orders need no multi-document transactions: an order document carries its own outbox (the
events to publish) and the ids of the events it has processed, so every state change and its
event are one atomic single-document write.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pymongo
import pymongo.errors
from opentelemetry.trace import Tracer
from pymongo import ReturnDocument

from microshop.events import Event, OrderCreated, parse_event
from microshop.orders.domain import (
    CATALOG,
    InvalidTransition,
    OrderStatus,
    PricedOrder,
    Product,
    next_status,
)
from microshop.platform.bus import OutgoingMessage
from microshop.platform.clock import as_utc
from microshop.platform.errors import Conflict
from microshop.platform.outbox import to_message
from microshop.platform.telemetry import TracedCollection

RELAY_BATCH = 100
# How long a relay may hold an order's events before another replica may take them over.
OUTBOX_LEASE_SECONDS = 30.0


def _duplicate_key_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [pymongo.errors.DuplicateKeyError]
    with contextlib.suppress(ImportError):
        import montydb.errors

        errors.append(montydb.errors.DuplicateKeyError)
    return tuple(errors)


DUPLICATE_KEY = _duplicate_key_errors()


def connect(url: str, database_name: str) -> tuple[Any, Any, bool]:
    """(client, database, embedded) for a mongodb://, montydb:/// or mongomock:// URL."""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000, tz_aware=True)
        return client, client[database_name], False
    if url.startswith("montydb://"):
        from montydb import MontyClient, set_storage

        # Like sqlite:///: three slashes then a relative path, four for an absolute one.
        path = url.removeprefix("montydb:///")
        if not path or path == url:
            raise ValueError(f"{url!r}: use montydb:///relative/path or montydb:////absolute/path")
        set_storage(path, storage="sqlite", use_bson=False)
        client = MontyClient(path)
        return client, client[database_name], True
    if url.startswith("mongomock://"):
        import mongomock

        client = mongomock.MongoClient(tz_aware=True)
        return client, client[database_name], True
    raise ValueError(f"unsupported orders database URL {url!r}: use mongodb://, montydb:///path")


class OrderStore:
    def __init__(
        self, url: str, database_name: str = "orders", tracer: Tracer | None = None
    ) -> None:
        self.client, self.db, embedded = connect(url, database_name)
        self.embedded = embedded
        self.orders, self.products = self.db["orders"], self.db["products"]
        if tracer is not None:
            self.orders = TracedCollection(self.orders, tracer)
            self.products = TracedCollection(self.products, tracer)
        # Called once an order and its order.created event are written (wakes the relay).
        self.on_commit: Callable[[], None] = lambda: None
        # The embedded stores are not made for concurrent writers: serialise access to them.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if embedded else contextlib.nullcontext()
        )

    # -- start-up -----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make indexes and seed the catalog; safe to run on every start of every replica."""
        with self._lock:
            self.orders.create_index("id", unique=True)
            self.orders.create_index(
                [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                unique=True,
            )
            self.orders.create_index(
                [("user_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)]
            )
            for product in CATALOG:
                self.products.update_one(
                    {"_id": product.sku},
                    {
                        "$set": {
                            "name": product.name,
                            "price_cents": product.price_cents,
                            "currency": product.currency,
                        }
                    },
                    upsert=True,
                )

    def ping(self) -> None:
        with self._lock:
            if self.embedded:
                self.products.find_one()
            else:
                self.client.admin.command("ping")

    def close(self) -> None:
        with self._lock:
            self.client.close()

    # -- catalog ------------------------------------------------------------------------------
    def catalog(self) -> dict[str, Product]:
        with self._lock:
            docs = list(self.products.find({}))
        return {
            d["_id"]: Product(d["_id"], d["name"], int(d["price_cents"]), d["currency"])
            for d in sorted(docs, key=lambda d: d["_id"])
        }

    # -- orders -------------------------------------------------------------------------------
    def place(
        self,
        *,
        user_id: str,
        idempotency_key: str,
        idempotency_id: str,
        fingerprint: str,
        priced: PricedOrder,
        payment_method: str,
        headers: dict[str, str],
    ) -> tuple[dict[str, Any], bool]:
        """Insert the order with its order.created event; (order, created) — False on a replay."""
        now = datetime.now(UTC)
        order_id = str(uuid.uuid4())
        event = OrderCreated(
            order_id=order_id,
            user_id=user_id,
            total_cents=priced.total_cents,
            currency=priced.currency,
            payment_method=payment_method,
            occurred_at=now,
        )
        doc = {
            "_id": idempotency_id,
            "id": order_id,
            "user_id": user_id,
            "idempotency_key": idempotency_key,
            "fingerprint": fingerprint,
            "status": OrderStatus.PENDING.value,
            "failure_code": None,
            "items": [line.__dict__ for line in priced.lines],
            "total_cents": priced.total_cents,
            "currency": priced.currency,
            "payment_method": payment_method,
            "created_at": now,
            "updated_at": now,
            "outbox": [_outbox_entry(event, headers)],
            "processed_event_ids": [],
        }
        try:
            with self._lock:
                self.orders.insert_one(doc)
            self.on_commit()
            return doc, True
        except DUPLICATE_KEY:
            with self._lock:
                existing = self.orders.find_one({"_id": idempotency_id})
            if existing is None:  # pragma: no cover - the key was taken by a concurrent twin
                raise
            if existing["fingerprint"] != fingerprint:
                raise Conflict(
                    "Idempotency-Key was already used with a different request body"
                ) from None
            return existing, False

    def get(self, user_id: str, order_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self.orders.find_one({"id": order_id, "user_id": user_id})

    def list_for_user(self, user_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
        query = {"user_id": user_id}
        with self._lock:
            total = self.orders.count_documents(query)
            docs = list(
                self.orders.find(query)
                .sort([("created_at", pymongo.DESCENDING), ("id", pymongo.DESCENDING)])
                .skip(offset)
                .limit(limit)
            )
        return docs, total

    def apply_payment_outcome(
        self, *, order_id: str, event_id: str, event_type: str, failure_code: str | None
    ) -> str:
        """Settle a PENDING order once per event: 'applied', 'duplicate' or 'ignored'."""
        try:
            target = next_status(OrderStatus.PENDING, event_type)
        except InvalidTransition:
            return "ignored"
        now = datetime.now(UTC)
        with self._lock:
            result = self.orders.update_one(
                {
                    "id": order_id,
                    "status": OrderStatus.PENDING.value,
                    "processed_event_ids": {"$ne": event_id},
                },
                {
                    "$set": {
                        "status": target.value,
                        "failure_code": failure_code,
                        "updated_at": now,
                        "settled_at": now,
                    },
                    "$push": {"processed_event_ids": event_id},
                },
            )
            if result.modified_count:
                return "applied"
            order = self.orders.find_one({"id": order_id})
        if order is None:
            raise LookupError(f"order {order_id} does not exist (yet)")
        if event_id in order.get("processed_event_ids", []):
            return "duplicate"
        return "ignored"  # already settled by another outcome: nothing to change

    def placed_at(self, order_id: str) -> datetime | None:
        with self._lock:
            order = self.orders.find_one({"id": order_id}, {"created_at": 1})
        return as_utc(order["created_at"]) if order else None

    # -- outbox -------------------------------------------------------------------------------
    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        """Claim orders with pending events (a short lease, so replicas relay side by side
        without sending an event twice), publish their events, then remove them."""
        docs = self._claim_outbox(RELAY_BATCH)
        messages = [
            to_message(parse_event(entry["payload"]), entry.get("headers"))
            for doc in docs
            for entry in doc["outbox"]
        ]
        if not messages:
            return 0
        try:
            publish(messages)
        except Exception:
            with self._lock:  # let the next attempt, here or in another replica, have them
                self.orders.update_many(
                    {"_id": {"$in": [doc["_id"] for doc in docs]}},
                    {"$set": {"outbox_lease_until": None}},
                )
            raise
        with self._lock:
            for doc in docs:
                sent = [entry["event_id"] for entry in doc["outbox"]]
                self.orders.update_one(
                    {"_id": doc["_id"]},
                    {
                        "$pull": {"outbox": {"event_id": {"$in": sent}}},
                        "$set": {"outbox_lease_until": None},
                    },
                )
        return len(messages)

    def _claim_outbox(self, limit: int) -> list[dict[str, Any]]:
        # Epoch seconds, not datetimes: the embedded stores hand datetimes back without a zone.
        now = time.time()
        claimed: list[dict[str, Any]] = []
        with self._lock:
            while len(claimed) < limit:
                doc = self.orders.find_one_and_update(
                    {
                        "outbox.0": {"$exists": True},
                        "$or": [
                            {"outbox_lease_until": None},  # also matches a missing field
                            {"outbox_lease_until": {"$lt": now}},  # a relay that died
                        ],
                    },
                    {"$set": {"outbox_lease_until": now + OUTBOX_LEASE_SECONDS}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is None:
                    break
                claimed.append(doc)
        return claimed

    def backlog(self) -> tuple[int, float]:
        with self._lock:
            docs = list(self.orders.find({"outbox.0": {"$exists": True}}, {"outbox": 1}))
        created = [
            as_utc(e["created_at"]) for d in docs for e in d["outbox"] if e.get("created_at")
        ]
        if not created:
            return 0, 0.0
        return len(created), (datetime.now(UTC) - min(created)).total_seconds()


def _outbox_entry(event: Event, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type,  # type: ignore[attr-defined]
        "payload": event.model_dump(mode="json"),
        "headers": dict(headers),
        "created_at": event.occurred_at,
    }
