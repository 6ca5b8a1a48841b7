"""Transactional outbox and inbox on SQL, and the relay that publishes the outbox with confirms."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Delete,
    Engine,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from microshop.events import Event, parse_event
from microshop.platform.bus import Bus, OutgoingMessage
from microshop.platform.db import UtcDateTime
from microshop.platform.groupcommit import GroupCommit
from microshop.platform.retry import RELAY, Backoff, until_stopped

log = logging.getLogger(__name__)


class OutboxMixin:
    """Columns of an outbox row: the event, written in the same transaction as the state change."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class InboxMixin:
    """Columns of an inbox row: one per event a consumer has processed (dedupe by event_id)."""

    __tablename__ = "processed_events"
    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OutboxSource(Protocol):
    """Where the relay reads events not yet published, and marks them published."""

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        """Publish a batch of pending events with `publish`; mark them done; return how many."""
        ...


def insert_once(connection: Connection, table: Table, row: dict[str, Any], *unique: str) -> bool:
    """Insert `row` into `table` unless a row with the same `unique` columns exists; whether
    this call wrote it.

    One statement (INSERT … ON CONFLICT DO NOTHING RETURNING, on PostgreSQL and SQLite alike)
    instead of a look-up and an insert, and no IntegrityError to catch, nor a rolled-back
    transaction, when a twin got there first: on PostgreSQL a twin still in its transaction makes
    this wait for its outcome, on SQLite its one writer does. Core, not the ORM: these run once
    per event on the consumers' hot path, where a unit-of-work flush costs more than the SQL.
    """
    key = (table, unique, connection.dialect.name)
    statement = _INSERT_ONCE.get(key)
    if statement is None:  # built once: building it costs more than running it
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = _INSERT_ONCE[key] = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=list(unique))
            .returning(*(table.c[name] for name in unique))
        )
    return connection.execute(statement, row).first() is not None


_INSERT_ONCE: dict[tuple[Table, tuple[str, ...], str], Any] = {}


def to_message(event: Event, headers: dict[str, str] | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        routing_key=event.type,  # type: ignore[attr-defined]
        body=event.model_dump_json().encode(),
        message_id=event.event_id,
        headers=dict(headers or {}),
    )


class SqlOutbox:
    """The outbox of a SQL service. `add` joins the caller's transaction; the relay drains it.

    `on_commit` is called once a transaction that added an event has committed (the runtime
    makes it wake the relay); a rolled-back one calls nothing.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], model: type[Any], batch: int = 100
    ) -> None:
        self.session_factory, self.model, self.batch = session_factory, model, batch
        self.table: Table = model.__table__
        self.engine: Engine = session_factory.kw["bind"]
        self._relay_statements: tuple[Select[Any], Delete] | None = None
        self.on_commit: Callable[[], None] = lambda: None
        self._added = f"outbox-added-{id(self)}"  # set in a session's info by `add`
        sqlalchemy_event.listen(session_factory, "after_commit", self._committed)
        sqlalchemy_event.listen(session_factory, "after_rollback", self._rolled_back)

    def add(self, session: Session, event: Event, headers: dict[str, str] | None = None) -> None:
        session.info[self._added] = True
        session.connection().execute(
            self.table.insert(),
            {
                "event_id": event.event_id,
                "type": event.type,  # type: ignore[attr-defined]
                "payload": event.model_dump(mode="json"),
                "headers": dict(headers or {}),
                "created_at": datetime.now(UTC),
            },
        )

    def _committed(self, session: Session) -> None:
        if session.info.pop(self._added, False):
            self.on_commit()

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(self._added, None)

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        pending, published = self._statements()
        # A connection, not a session: the relay writes nothing a session would track.
        with self.engine.begin() as connection:
            rows = connection.execute(pending, {"batch": self.batch}).all()
            if not rows:
                return 0
            messages = [to_message(parse_event(row.payload), row.headers) for row in rows]
            publish(messages)
            connection.execute(published, {"ids": [row.id for row in rows]})
            return len(rows)

    def _statements(self) -> tuple[Select[Any], Delete]:
        """The oldest events (at most `batch`), and their removal once published; built once,
        since building a statement costs more than running it. SKIP LOCKED lets several
        replicas relay side by side without sending a row twice (SQLite has one writer and
        ignores the clause)."""
        if self._relay_statements is None:
            table = self.table
            pending: Select[Any] = (
                select(table.c.id, table.c.payload, table.c.headers)
                .order_by(table.c.id)
                .limit(bindparam("batch", type_=Integer))
                .with_for_update(skip_locked=True)
            )
            published = delete(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
            self._relay_statements = (pending, published)
        return self._relay_statements

    def backlog(self) -> tuple[int, float]:
        """How many events wait, and the age in seconds of the oldest."""
        with self.session_factory() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(self.model.created_at))
            ).one()
        if not oldest:
            return 0, 0.0
        return int(count), (datetime.now(UTC) - oldest).total_seconds()


class SqlInbox:
    """Runs a consumer's change at most once per event_id, in one transaction with its mark.

    On SQLite (one writer per file) the changes of the consumers waiting at the time commit
    together, from one thread (platform/groupcommit.py); on PostgreSQL each commits in its
    caller's own transaction, side by side.
    """

    def __init__(
        self, session_factory: sessionmaker[Session], model: type[Any], consumer: str
    ) -> None:
        self.session_factory, self.model, self.consumer = session_factory, model, consumer
        self.table: Table = model.__table__
        engine: Engine = session_factory.kw["bind"]
        self._grouped: GroupCommit[Session] | None = None
        if engine.dialect.name == "sqlite":
            self._grouped = GroupCommit(f"inbox-{consumer}", session_factory.begin)
            # Its writer goes with the engine it writes through (the runtime's close).
            sqlalchemy_event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def process_once(self, event_id: str, change: Callable[[Session], None]) -> bool:
        """Apply `change` and record `event_id` atomically; False if it was processed before.

        The mark goes first, as an insert that does nothing where it exists: a twin delivery
        that committed already leaves nothing to do, and one committing meanwhile makes this
        insert wait for it (PostgreSQL) or is kept out by SQLite's one writer. On SQLite
        `change` may run twice (its group failed): it must touch nothing but the session."""
        key = {"consumer": self.consumer, "event_id": event_id}

        def once(session: Session) -> bool:
            mark = {**key, "processed_at": datetime.now(UTC)}
            if not insert_once(session.connection(), self.table, mark, *key):
                return False
            change(session)
            return True

        try:
            if self._grouped is not None:
                return self._grouped.run(once)
            with self.session_factory.begin() as session:
                return once(session)
        except IntegrityError:
            # Another unique rule of the change (one payment per order) met a twin: if that twin
            # was this very event, it did the work.
            with self.session_factory() as session:
                if session.get(self.model, key) is not None:
                    return False
            raise

    def close(self) -> None:
        if self._grouped is not None:
            self._grouped.close()


class OutboxRelay:
    """A background thread that publishes the outbox: woken after commits, polling as a fallback.

    A batch that fails (the broker is away) is retried with `backoff` until it goes out or the
    relay stops; nothing is lost meanwhile, since the events stay in the outbox.
    """

    def __init__(
        self,
        source: OutboxSource,
        bus: Bus,
        poll_seconds: float = 0.5,
        name: str = "outbox",
        backoff: Backoff = RELAY,
    ) -> None:
        self.source, self.bus, self.poll_seconds = source, bus, poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._retrying = until_stopped(backoff, self._stop, log, "outbox relay")
        self._thread = threading.Thread(target=self._run, name=f"relay-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Publish soon: called after a transaction that wrote to the outbox has committed."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                published = self._retrying(self.source.relay_batch, self.bus.publish)
            except Exception:  # only once stopping: the events wait for the next start
                return
            if not published:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
