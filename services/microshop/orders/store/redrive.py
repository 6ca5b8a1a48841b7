"""The re-drive sweeper's view of the orders, on either backend: which orders have waited too
long for their payment (PENDING) or their notification (PAID, no notification.sent recorded),
each claimed with its order.created written again to the order's outbox in one write.

Times are epoch seconds: the embedded stores cannot compare a zoned datetime in a query. Only
an unfinished order has a due time (`redrive_at`): a PENDING one when it is placed (document
store) or the first time the sweeper sees it (SQLite: one statement per sweep, over the few
PENDING orders), a PAID one in the very write that settles it (`settling`, `record_settled`: no
crash can come between the two), and a new one each time it is driven again; a notified or
failed order has none. So every query reads an index range of unfinished orders, however many
finished ones there are.
The claim is conditional on the due time it read: replicas never drive an order twice in one
period.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Literal, Protocol

import pymongo

from microshop.events import OrderCreated
from microshop.orders.domain import OrderStatus
from microshop.orders.store.backend import DocumentBackend, drop_indexes
from microshop.orders.store.outbox import DocumentOutbox, add_event, outbox_entry
from microshop.orders.store.sqlite import SqliteBackend, SqliteOutbox, from_micros
from microshop.platform.clock import as_utc

REDRIVE_AT = "redrive_at"
NOTIFIED_AT = "notified_at"
Reason = Literal["payment_missing", "notification_missing"]
_REASON_OF: dict[str, Reason] = {
    OrderStatus.PENDING.value: "payment_missing",
    OrderStatus.PAID.value: "notification_missing",
}


class Redrives(Protocol):
    # How long an order may wait for its payment, or a paid one for its notification.
    after_seconds: float

    def create_indexes(self) -> None:
        """Safe to run on every start of every replica."""

    def mark_notified(self, order_id: str) -> bool:
        """Record that the order's buyer was notified (it is finished); False if it was
        already recorded."""

    def sweep(self, after_seconds: float, limit: int = 100) -> list[tuple[str, Reason]]:
        """Drive again up to `limit` unfinished orders first seen `after_seconds` ago, or driven
        again that long ago; (order id, reason) of each."""


_UNFINISHED_STATUS: dict[str, Any] = {"$in": list(_REASON_OF)}
# The compound index of an earlier release (pymongo's default name), dropped at start.
OBSOLETE_INDEX = "status_1_redrive_at_1"


class DocumentRedrives:
    """On the document store the due time is indexed alone, sparsely: only unfinished orders
    have one, so the sweep's range (`redrive_at < now`) reads the due orders and no others. (A
    compound `(status, redrive_at)` index made SecantusDB read every PAID order on each sweep:
    1.1 s at 10,000 finished orders, against 4 ms with this one.) A new order gets its due time
    in the write that places it (`first_wait`), so no sweep has to look for PENDING orders
    without one, which no index could find."""

    def __init__(
        self, backend: DocumentBackend, outbox: DocumentOutbox, after_seconds: float = 60.0
    ) -> None:
        self.backend, self.outbox, self.after_seconds = backend, outbox, after_seconds

    def create_indexes(self) -> None:
        with self.backend.lock:
            orders = self.backend.orders
            orders.create_index([(REDRIVE_AT, pymongo.ASCENDING)], sparse=True)
            drop_indexes(orders, {OBSOLETE_INDEX})
            # PENDING orders an earlier release placed without a due time: one pass at start.
            orders.update_many(
                {"status": OrderStatus.PENDING.value, REDRIVE_AT: {"$exists": False}},
                {"$set": {REDRIVE_AT: time.time() + self.after_seconds}},
            )

    def first_wait(self) -> dict[str, Any]:
        """The fields of a new order for the sweeper: due `after_seconds` from now."""
        return {REDRIVE_AT: time.time() + self.after_seconds}

    def mark_notified(self, order_id: str) -> bool:
        # Best effort: were it lost, the sweeper drives the order again and notifications
        # announces its one notification once more.
        with self.backend.lock:
            result = self.backend.orders_best_effort.update_one(
                {"id": order_id, NOTIFIED_AT: None},
                {"$set": {NOTIFIED_AT: time.time()}, "$unset": {REDRIVE_AT: ""}},
            )
        return bool(result.modified_count)

    def settling(self, paid: bool) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """What the write settling an order adds for the sweeper, as (filter, update) parts to
        try in turn, each excluding the others: a PAID order waits for its notification
        `after_seconds` at most, unless notification.sent overtook the payment's outcome (a
        redelivery); then, like a PAYMENT_FAILED one, it is finished."""
        finished: dict[str, Any] = {"$unset": {REDRIVE_AT: ""}}
        if not paid:
            return [({}, finished)]
        due = {"$set": {REDRIVE_AT: time.time() + self.after_seconds}}
        return [({NOTIFIED_AT: None}, due), ({NOTIFIED_AT: {"$ne": None}}, finished)]

    def sweep(self, after_seconds: float, limit: int = 100) -> list[tuple[str, Reason]]:
        now = time.time()
        driven: list[tuple[str, Reason]] = []
        with self.backend.lock:
            orders = self.backend.orders
            due = {REDRIVE_AT: {"$lt": now}, "status": _UNFINISHED_STATUS, NOTIFIED_AT: None}
            for doc in list(orders.find(due).limit(limit)):
                update = add_event(outbox_entry(_order_created(doc), {}))
                update["$set"] = {**update["$set"], REDRIVE_AT: now + after_seconds}
                claimed = orders.update_one(
                    {"_id": doc["_id"], "status": doc["status"], REDRIVE_AT: doc[REDRIVE_AT]},
                    update,
                )
                if claimed.modified_count:
                    driven.append((doc["id"], _REASON_OF[doc["status"]]))
        if driven:
            self.outbox.on_commit()
        return driven


SEEN_MARGIN_SECONDS = 60.0
# The due orders, oldest due first. CROSS JOIN: from the due times' range (redrives_due) to
# each order by id; a plain JOIN let SQLite walk every PENDING and PAID order by status instead.
SQLITE_DUE = (
    "SELECT o.id, o.user_id, o.total_cents, o.currency, o.payment_method, o.status,"
    " o.created_at"
    " FROM redrives r CROSS JOIN orders o ON o.id = r.order_id"
    " WHERE r.redrive_at < ? AND r.notified_at IS NULL AND o.status IN (?, ?)"
    " ORDER BY r.redrive_at LIMIT ?"
)
_SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS redrives ("
    " order_id TEXT PRIMARY KEY, redrive_at REAL, notified_at REAL"
    ") WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS redrives_due ON redrives (redrive_at)",
)


class SqliteRedrives:
    """A table of its own beside the orders (the store's schema is left as it is): one row per
    order the sweeper has seen, that settled, or that notification.sent has reached;
    `redrive_at` is NULL once it is finished (the index holds only the unfinished)."""

    def __init__(
        self, backend: SqliteBackend, outbox: SqliteOutbox, after_seconds: float = 60.0
    ) -> None:
        self.backend, self.outbox, self.after_seconds = backend, outbox, after_seconds
        # Orders created before this (microseconds) were seen by an earlier sweep: each sweep
        # reads only the newer ones (orders_by_status), with a margin for slow writers.
        self._seen_before = 0

    def create_indexes(self) -> None:
        def create(connection: sqlite3.Connection) -> None:
            for statement in _SQLITE_SCHEMA:
                connection.execute(statement)

        self.backend.transact(create)

    def mark_notified(self, order_id: str) -> bool:
        return self.backend.transact(
            lambda connection: bool(
                connection.execute(
                    "INSERT INTO redrives (order_id, redrive_at, notified_at) VALUES (?, NULL, ?)"
                    " ON CONFLICT (order_id) DO UPDATE SET notified_at = excluded.notified_at,"
                    " redrive_at = NULL WHERE notified_at IS NULL",
                    (order_id, time.time()),
                ).rowcount
            )
        )

    def record_settled(self, connection: sqlite3.Connection, order_id: str, paid: bool) -> None:
        """In the transaction settling the order: PAID waits for its notification
        `after_seconds` at most (unless notification.sent came first), PAYMENT_FAILED is
        finished."""
        due = time.time() + self.after_seconds if paid else None
        connection.execute(
            "INSERT INTO redrives (order_id, redrive_at) VALUES (?, ?)"
            " ON CONFLICT (order_id) DO UPDATE SET redrive_at = excluded.redrive_at"
            " WHERE notified_at IS NULL",
            (order_id, due),
        )

    def sweep(self, after_seconds: float, limit: int = 100) -> list[tuple[str, Reason]]:
        now = time.time()
        pending, paid = OrderStatus.PENDING.value, OrderStatus.PAID.value

        def redrive(connection: sqlite3.Connection) -> list[tuple[str, Reason]]:
            driven: list[tuple[str, Reason]] = []
            # orders_by_status (status, created_at) finds the PENDING ones placed lately.
            connection.execute(
                "INSERT INTO redrives (order_id, redrive_at)"
                " SELECT id, ? FROM orders WHERE status = ? AND created_at >= ?"
                " ON CONFLICT (order_id) DO NOTHING",
                (now + after_seconds, pending, self._seen_before),
            )
            rows = connection.execute(SQLITE_DUE, (now, pending, paid, limit)).fetchall()
            for row in rows:
                event = _order_created({**row, "created_at": from_micros(row["created_at"])})
                connection.execute(
                    "UPDATE redrives SET redrive_at = ? WHERE order_id = ?",
                    (now + after_seconds, row["id"]),
                )
                connection.execute(
                    "INSERT INTO outbox (event_id, order_id, payload, headers, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (event.event_id, row["id"], event.model_dump_json(), json.dumps({}),
                     int(now * 1_000_000)),
                )  # fmt: skip
                driven.append((row["id"], _REASON_OF[row["status"]]))
            return driven

        driven = self.backend.transact(redrive)
        # Only once committed: a sweep whose transaction failed reads those orders again.
        self._seen_before = int((now - SEEN_MARGIN_SECONDS) * 1_000_000)
        if driven:
            self.outbox.on_commit()
        return driven


def _order_created(doc: dict[str, Any]) -> OrderCreated:
    """The order's order.created once more, under a new event id (payments dedupes by order)."""
    return OrderCreated(
        order_id=doc["id"],
        user_id=doc["user_id"],
        total_cents=doc["total_cents"],
        currency=doc["currency"],
        payment_method=doc["payment_method"],
        placed_at=as_utc(doc["created_at"]),
    )
