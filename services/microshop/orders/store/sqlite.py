"""The embedded orders store of the standalone mode: one SQLite file (sqlite:///path), in WAL
mode, with a real index for every query the service runs.

It meets the same interface as the document store (base.py), and keeps the same promises by
SQL's own means: an order, its order.created event (a row of `outbox`) and later the events it
has processed (`processed_events`) are written in one transaction. Each thread has its own
connection, so readers never wait for each other or for the writer (WAL). Every write of this
process is run by one writer thread, which commits the work of all the callers waiting at the
time in one transaction (group commit, `SqliteBackend.transact`); `busy_timeout` covers another
process on the same file.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry.trace import Tracer

from microshop.events import parse_event
from microshop.orders.domain import (
    CATALOG,
    InvalidTransition,
    OrderStatus,
    PricedOrder,
    Product,
    next_status,
)
from microshop.orders.store.base import (
    OUTBOX_LEASE_SECONDS,
    Claim,
    LeasedOutbox,
    Settlement,
    new_order,
    replayed,
)
from microshop.platform import clock
from microshop.platform.groupcommit import GroupCommit
from microshop.platform.outbox import to_message
from microshop.platform.telemetry import TracedConnection

if TYPE_CHECKING:
    from microshop.orders.store.redrive import SqliteRedrives

T = TypeVar("T")

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    currency TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    key TEXT PRIMARY KEY,  -- the idempotency id: one order per (user, Idempotency-Key)
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_code TEXT,
    items TEXT NOT NULL,  -- JSON
    total_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    created_at INTEGER NOT NULL,  -- microseconds since the epoch, UTC
    updated_at INTEGER NOT NULL,
    settled_at INTEGER,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, created_at);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    payload TEXT NOT NULL,  -- JSON
    headers TEXT NOT NULL,  -- JSON
    created_at INTEGER NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,  -- epoch seconds, 0: not claimed
    lease TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_lease ON outbox (lease_until, seq);
CREATE TABLE IF NOT EXISTS processed_events (
    order_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (order_id, event_id)
) WITHOUT ROWID;
"""
COLUMNS = (
    "key, id, user_id, idempotency_key, fingerprint, status, failure_code, items, total_cents,"
    " currency, payment_method, created_at, updated_at, settled_at"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def path_of(url: str) -> Path:
    """The file of sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's form)."""
    path = url.removeprefix("sqlite:///")
    if path == url or not path or path == ":memory:":
        raise ValueError(
            f"{url!r}: use sqlite:///relative/path or sqlite:////absolute/path"
            " (one file shared by the service's threads)"
        )
    return Path(path)


def to_micros(value: datetime) -> int:
    return (value - EPOCH) // MICROSECOND


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * MICROSECOND


def order_of(row: sqlite3.Row) -> dict[str, Any]:
    """A row as the document store's order (the fields the API and handlers read)."""
    order = dict(row)
    order["_id"] = order.pop("key")
    order["items"] = json.loads(order["items"])
    for name in ("created_at", "updated_at", "settled_at"):
        order[name] = from_micros(order[name])
    if order["settled_at"] is None:
        del order["settled_at"]
    return order


class SqliteBackend:
    """The file, a connection per thread for reads, and the one thread that runs its writes,
    several callers' to a commit (platform/groupcommit.py)."""

    def __init__(self, path: Path, tracer: Tracer | None = None) -> None:
        self.path, self.tracer = path, tracer
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        self._writes = GroupCommit(f"sqlite-{path.name}", self._transaction)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (its statements traced when tracing is on)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: transactions are begun explicitly, writes with BEGIN IMMEDIATE.
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed order survives a power cut too, as with j=true on a server.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=30000")
            with self._opened_lock:
                self._opened.append(connection)
            if self.tracer is not None:
                connection = cast(sqlite3.Connection, TracedConnection(connection, self.tracer))
            self._local.connection = connection
        return connection

    def transact(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` in a write transaction; what it returns (or raises), once committed."""
        return self._writes.run(body)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self.connection()  # the writer thread's
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: its statements see one snapshot."""
        connection = self.connection()
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("COMMIT")

    def create_schema(self) -> None:
        def create(connection: sqlite3.Connection) -> None:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this code's"
                    f" {SCHEMA_VERSION}; run the newer release"
                )
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        self.transact(create)

    def ping(self) -> None:
        self.connection().execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._writes.close()  # after every write queued before it
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()


class SqliteCatalog:
    def __init__(self, backend: SqliteBackend) -> None:
        self.backend = backend

    def seed(self) -> None:
        self.backend.transact(
            lambda connection: connection.executemany(
                "INSERT INTO products (sku, name, price_cents, currency) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sku) DO UPDATE SET name = excluded.name,"
                " price_cents = excluded.price_cents, currency = excluded.currency",
                [(p.sku, p.name, p.price_cents, p.currency) for p in CATALOG],
            )
        )

    def products(self) -> dict[str, Product]:
        rows = self.backend.connection().execute(
            "SELECT sku, name, price_cents, currency FROM products ORDER BY sku"
        )
        return {row["sku"]: Product(*row) for row in rows}


class SqliteOutbox(LeasedOutbox):
    def __init__(self, backend: SqliteBackend) -> None:
        super().__init__()
        self.backend = backend

    def new_event_lease(self) -> tuple[float, str | None]:
        """(lease_until, lease) of a new order's event: leased to this process's relay, which
        `hand_over` then gives it to, or pending for any relay."""
        if self.hand_over_lease():
            return time.time() + OUTBOX_LEASE_SECONDS, self.token
        return 0.0, None

    def claim_stored(self, limit: int) -> Claim:
        now = time.time()
        claim = Claim()

        def lease(connection: sqlite3.Connection) -> list[sqlite3.Row]:
            rows = connection.execute(
                "SELECT seq, event_id, payload, headers FROM outbox"
                " WHERE lease_until <= ? ORDER BY lease_until, seq LIMIT ?",
                (now, limit),
            ).fetchall()
            connection.executemany(
                "UPDATE outbox SET lease_until = ?, lease = ? WHERE seq = ?",
                [(now + OUTBOX_LEASE_SECONDS, claim.token, row["seq"]) for row in rows],
            )
            return rows

        rows = self.backend.transact(lease)
        claim.keys = [row["seq"] for row in rows]
        for row in rows:
            claim.event_ids.append(row["event_id"])
            event = parse_event(json.loads(row["payload"]))
            claim.messages.append(to_message(event, json.loads(row["headers"])))
        return claim

    def release(self, claim: Claim) -> None:
        self.backend.transact(
            lambda connection: connection.executemany(
                "UPDATE outbox SET lease_until = 0, lease = NULL WHERE seq = ? AND lease = ?",
                [(seq, claim.token) for seq in claim.keys],
            )
        )

    def clear(self, claim: Claim) -> None:
        self.backend.transact(
            lambda connection: connection.executemany(
                "DELETE FROM outbox WHERE seq = ? AND lease = ?",
                [(seq, claim.token) for seq in claim.keys],
            )
        )

    def backlog(self) -> tuple[int, float]:
        count, oldest = (
            self.backend.connection()
            .execute("SELECT count(*), min(created_at) FROM outbox")
            .fetchone()
        )
        if not count:
            return 0, 0.0
        return int(count), time.time() - oldest / 1e6


class SqliteOrders:
    def __init__(
        self, backend: SqliteBackend, outbox: SqliteOutbox, redrives: SqliteRedrives
    ) -> None:
        self.backend, self.outbox, self.redrives = backend, outbox, redrives

    def create_indexes(self) -> None:
        self.backend.create_schema()

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
        order, event = new_order(
            user_id=user_id,
            idempotency_key=idempotency_key,
            idempotency_id=idempotency_id,
            fingerprint=fingerprint,
            priced=priced,
            payment_method=payment_method,
        )
        created = to_micros(order["created_at"])
        items, payload = json.dumps(order["items"]), event.model_dump_json()
        stored_headers = json.dumps(headers)

        def insert(
            connection: sqlite3.Connection,
        ) -> tuple[sqlite3.Row | None, bool, int | None, str | None]:
            inserted = connection.execute(
                f"INSERT INTO orders ({COLUMNS}) VALUES ({', '.join('?' * 14)})"
                " ON CONFLICT DO NOTHING",
                (
                    idempotency_id, order["id"], user_id, idempotency_key, fingerprint,
                    order["status"], None, items, order["total_cents"],
                    order["currency"], payment_method, created, created, None,
                ),
            ).rowcount  # fmt: skip
            if not inserted:
                row = connection.execute(
                    f"SELECT {COLUMNS} FROM orders WHERE key = ?", (idempotency_id,)
                ).fetchone()
                return row, False, None, None
            lease_until, lease = self.outbox.new_event_lease()
            seq = connection.execute(
                "INSERT INTO outbox (event_id, order_id, payload, headers, created_at,"
                " lease_until, lease) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (event.event_id, order["id"], payload, stored_headers, created, lease_until, lease),
            ).lastrowid
            return None, True, seq, lease

        existing, inserted, seq, lease = self.backend.transact(insert)
        if not inserted:
            return replayed(order_of(existing) if existing else None, fingerprint), False
        if lease is not None:
            assert seq is not None
            self.outbox.hand_over(seq, event.event_id, to_message(event, headers))
        self.outbox.on_commit()
        return order, True

    def get(self, user_id: str, order_id: str) -> dict[str, Any] | None:
        row = (
            self.backend.connection()
            .execute(
                f"SELECT {COLUMNS} FROM orders WHERE id = ? AND user_id = ?", (order_id, user_id)
            )
            .fetchone()
        )
        return order_of(row) if row else None

    def list_for_user(self, user_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
        with self.backend.read() as connection:
            total = connection.execute(
                "SELECT count(*) FROM orders WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            rows = connection.execute(
                f"SELECT {COLUMNS} FROM orders WHERE user_id = ?"
                " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                (user_id, limit, offset),
            ).fetchall()
        return [order_of(row) for row in rows], int(total)

    def apply_payment_outcome(
        self,
        *,
        order_id: str,
        event_id: str,
        event_type: str,
        failure_code: str | None,
        placed_at: datetime | None = None,  # read with the status anyway: the stored one
    ) -> Settlement:
        try:
            target = next_status(OrderStatus.PENDING, event_type)
        except InvalidTransition:
            return Settlement("ignored")
        now = to_micros(clock.now())

        def settle(connection: sqlite3.Connection) -> Settlement:
            found = connection.execute(
                "SELECT status, created_at, EXISTS (SELECT 1 FROM processed_events"
                " WHERE order_id = orders.id AND event_id = ?) AS processed"
                " FROM orders WHERE id = ?",
                (event_id, order_id),
            ).fetchone()
            if found is None:
                raise LookupError(f"order {order_id} does not exist (yet)")
            if found["processed"]:
                return Settlement("duplicate")
            if found["status"] != OrderStatus.PENDING.value:
                return Settlement("ignored")  # already settled by another outcome
            connection.execute(
                "UPDATE orders SET status = ?, failure_code = ?, updated_at = ?, settled_at = ?"
                " WHERE id = ?",
                (target.value, failure_code, now, now, order_id),
            )
            connection.execute(
                "INSERT INTO processed_events (order_id, event_id) VALUES (?, ?)",
                (order_id, event_id),
            )
            self.redrives.record_settled(connection, order_id, target is OrderStatus.PAID)
            return Settlement("applied", from_micros(found["created_at"]))

        return self.backend.transact(settle)
