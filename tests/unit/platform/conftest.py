"""Fixtures of the platform tests: an in-process bus per test and a SQLite outbox/inbox schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from microshop.platform import db
from microshop.platform.bus import RetryPolicy
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.retry import Backoff
from tests.support.outbox_schema import PlatformTestBase


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
# A relay polling every 0.02 s backs off from 0.04 s.
FAST_BACKOFF = Backoff(first_seconds=0.04, max_seconds=1.0)


@pytest.fixture
def memory_bus() -> Iterator[MemoryBus]:
    bus = MemoryBus(FAST_RETRY)
    yield bus
    bus.close()


@pytest.fixture
def bus_url() -> str:
    return f"memory://platform-{uuid.uuid4().hex}"
