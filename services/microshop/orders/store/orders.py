"""Orders in the orders database: placing one (idempotently, with its event), reading the
caller's, and settling one once by its payment outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pymongo

from microshop.events import OrderCreated
from microshop.orders.domain import InvalidTransition, OrderStatus, PricedOrder, next_status
from microshop.orders.store import inbox
from microshop.orders.store.backend import DUPLICATE_KEY, DocumentBackend
from microshop.orders.store.outbox import OUTBOX, DocumentOutbox, outbox_entry
from microshop.platform.clock import as_utc
from microshop.platform.errors import Conflict


class Orders:
    def __init__(self, backend: DocumentBackend, outbox: DocumentOutbox) -> None:
        self.backend, self.outbox = backend, outbox

    def create_indexes(self) -> None:
        """Safe to run on every start of every replica."""
        with self.backend.lock:
            orders = self.backend.orders
            orders.create_index("id", unique=True)
            orders.create_index(
                [("user_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                unique=True,
            )
            orders.create_index(
                [("user_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)]
            )

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
            OUTBOX: [outbox_entry(event, headers)],
            inbox.PROCESSED: [],
        }
        try:
            with self.backend.lock:
                self.backend.orders.insert_one(doc)
            self.outbox.on_commit()
            return doc, True
        except DUPLICATE_KEY:
            with self.backend.lock:
                existing = self.backend.orders.find_one({"_id": idempotency_id})
            if existing is None:  # pragma: no cover - the key was taken by a concurrent twin
                raise
            if existing["fingerprint"] != fingerprint:
                raise Conflict(
                    "Idempotency-Key was already used with a different request body"
                ) from None
            return existing, False

    def get(self, user_id: str, order_id: str) -> dict[str, Any] | None:
        with self.backend.lock:
            found: dict[str, Any] | None = self.backend.orders.find_one(
                {"id": order_id, "user_id": user_id}
            )
            return found

    def list_for_user(self, user_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
        query = {"user_id": user_id}
        with self.backend.lock:
            total = self.backend.orders.count_documents(query)
            docs = list(
                self.backend.orders.find(query)
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
        with self.backend.lock:
            result = self.backend.orders.update_one(
                {
                    "id": order_id,
                    "status": OrderStatus.PENDING.value,
                    **inbox.unprocessed(event_id),
                },
                {
                    "$set": {
                        "status": target.value,
                        "failure_code": failure_code,
                        "updated_at": now,
                        "settled_at": now,
                    },
                    **inbox.record(event_id),
                },
            )
            if result.modified_count:
                return "applied"
            order = self.backend.orders.find_one({"id": order_id})
        if order is None:
            raise LookupError(f"order {order_id} does not exist (yet)")
        if inbox.has_processed(order, event_id):
            return "duplicate"
        return "ignored"  # already settled by another outcome: nothing to change

    def placed_at(self, order_id: str) -> datetime | None:
        with self.backend.lock:
            order = self.backend.orders.find_one({"id": order_id}, {"created_at": 1})
        return as_utc(order["created_at"]) if order else None
