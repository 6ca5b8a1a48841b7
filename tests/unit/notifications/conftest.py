"""Fixtures of the notifications service tests: keys, settings on SQLite (or, where a test
module asks for `database_url` over both backends, the machine's PostgreSQL), a running app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from microshop.notifications.app import create_app
from microshop.notifications.settings import NotificationsSettings
from microshop.platform.auth import KeyPair, generate_key_pair
from tests.integration.conftest import PG_ADMIN
from tests.support.servers import unavailable


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


def postgres_database() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL for one test; its SQLAlchemy URL."""
    name = f"microshop_notifications_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        unavailable("PostgreSQL at 127.0.0.1:5432", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/notifications.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend the service runs on: SQLite (standalone) and PostgreSQL (a cluster)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/notifications.db"
    else:
        yield from postgres_database()


@pytest.fixture
def settings(database_url: str, tmp_path: Path, keys: KeyPair) -> NotificationsSettings:
    return NotificationsSettings(
        database_url=database_url,
        # A bus of its own per test, so no test sees another's messages.
        bus_url=f"memory://notifications-{tmp_path.name}",
        jwt_public_key=keys.public_pem,
        # One consumer: events are handled, and notifications made, in the order published, so
        # a marker published last drains the queue and "newest first" is the publishing order
        # (the in-process bus's default runs 16 side by side).
        consumers_per_queue=1,
    )


@pytest.fixture
def client(settings: NotificationsSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
