"""Fixtures of the platform tests: an in-process bus per test and a SQLite outbox/inbox schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from microshop.platform import db
from microshop.platform.bus import RetryPolicy
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.outbox import InboxMixin, OutboxMixin


class PlatformTestBase(DeclarativeBase):
    pass


class Outbox(OutboxMixin, PlatformTestBase):
    pass


class Inbox(InboxMixin, PlatformTestBase):
    pass


class Effect(PlatformTestBase):
    """What a consumer's change writes; deliberately without a unique key so twins would show."""

    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))


@dataclass
class SqlStore:
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    PlatformTestBase.metadata.create_all(engine)
    yield SqlStore(engine, db.make_session_factory(engine))
    engine.dispose()


FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_seconds=0.05, max_delay_seconds=1.0)


@pytest.fixture
def memory_bus() -> Iterator[MemoryBus]:
    bus = MemoryBus(FAST_RETRY)
    yield bus
    bus.close()


@pytest.fixture
def bus_url() -> str:
    return f"memory://platform-{uuid.uuid4().hex}"
