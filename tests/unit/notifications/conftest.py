"""Fixtures of the notifications service tests: keys, settings on SQLite, a running app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from microshop.notifications.app import create_app
from microshop.notifications.settings import NotificationsSettings
from microshop.platform.auth import KeyPair, generate_key_pair


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def settings(tmp_path: Path, keys: KeyPair) -> NotificationsSettings:
    return NotificationsSettings(
        database_url=f"sqlite:///{tmp_path}/notifications.db",
        # A bus of its own per test, so no test sees another's messages.
        bus_url=f"memory://notifications-{tmp_path.name}",
        jwt_public_key=keys.public_pem,
    )


@pytest.fixture
def client(settings: NotificationsSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
