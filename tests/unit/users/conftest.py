"""Fixtures of the users service tests: signing keys, settings on SQLite, a running app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from microshop.platform.auth import KeyPair, generate_key_pair
from microshop.users.app import create_app
from microshop.users.settings import UsersSettings


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def settings(tmp_path: Path, keys: KeyPair) -> UsersSettings:
    return UsersSettings(
        database_url=f"sqlite:///{tmp_path}/users.db",
        bus_url=f"memory://users-{tmp_path.name}",
        jwt_private_key=keys.private_pem,
        jwt_public_key=keys.public_pem,
    )


@pytest.fixture
def client(settings: UsersSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
