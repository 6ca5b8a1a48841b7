"""SQL databases (PostgreSQL or SQLite through SQLAlchemy 2) and Alembic migrations at start-up."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    DateTime,
    Dialect,
    Engine,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from microshop.platform.clock import as_utc


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that comes back in UTC from every backend, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def make_engine(url: str) -> Engine:
    # A failed statement's parameters (password hashes, emails, names) never reach an exception
    # text, and so never a log line or a traceback.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "factory": QueuedWriters},
            hide_parameters=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        queue_writers(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
        )
    raise ValueError(f"unsupported database URL {url!r}: use postgresql+psycopg://… or sqlite:///…")


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
WRITER_WAIT_SECONDS = 30.0  # as long as busy_timeout lets another process's writer hold it


class QueuedWriters(sqlite3.Connection):
    """A SQLite connection whose transactions take their engine's lock before their first
    write and give it back once their commit or rollback is done (see `queue_writers`)."""

    write_lock: threading.Lock | None = None
    holds_write_lock = False

    def take_write_lock(self) -> None:
        if self.holds_write_lock or self.write_lock is None:
            return
        if not self.write_lock.acquire(timeout=WRITER_WAIT_SECONDS):
            raise sqlite3.OperationalError(
                f"database is locked: another writer of this process held it for"
                f" {WRITER_WAIT_SECONDS:.0f} s"
            )
        self.holds_write_lock = True

    def _give_back(self) -> None:
        if self.holds_write_lock and self.write_lock is not None:
            self.holds_write_lock = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def queue_writers(engine: Engine) -> None:
    """Make this process's writers of a SQLite file wait their turn on a lock, not in SQLite.

    SQLite has one writer per file. A second writer that finds it taken backs off in SQLite's
    busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries whether or not the file has
    been freed meanwhile: with a consumer and its relay writing one file, the standalone saga
    slept ~6.5 ms that way twice an order (strace). Here a transaction takes the engine's lock
    before its first write (the statement that makes pysqlite open the transaction) and gives
    it back once its commit or rollback is done (the pool's reset on return is a rollback), so
    a writer of this process starts the moment the previous one is done. Readers take no lock
    (WAL: they never wait for the writer); `busy_timeout` still covers another process.
    """
    lock = threading.Lock()

    @event.listens_for(engine, "connect")
    def _share_lock(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.write_lock = lock

    @event.listens_for(engine, "before_cursor_execute")
    def _take(connection, _cursor, statement, _parameters, _context, _executemany):
        if statement.lstrip()[:7].upper().startswith(WRITES):
            dbapi_connection = connection.connection.dbapi_connection
            if isinstance(dbapi_connection, QueuedWriters):
                dbapi_connection.take_write_lock()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine, migrations_dir: Path) -> None:
    """Upgrade the database to the newest revision.

    Replicas start together, so on PostgreSQL the upgrade runs under an advisory lock: the
    first replica migrates, the others wait and then find nothing to do.
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    with engine.connect() as connection:
        is_postgres = connection.dialect.name == "postgresql"
        lock_id = zlib.crc32(str(migrations_dir.name).encode())
        if is_postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if is_postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
                connection.commit()


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def run_migrations_env(target_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py: run online on the connection migrate() passes."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:  # `alembic` on the command line: connect from the configured URL
        engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
