"""The users schema refuses a second user with the same email (whatever the code checked)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from microshop import registry
from microshop.platform.db import make_engine, make_session_factory, migrate
from microshop.users.models import User


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    migrate(engine, registry.service("users").migrations)
    return engine


def test_the_schema_refuses_a_second_user_with_the_same_email(engine: Engine) -> None:
    sessions = make_session_factory(engine)

    def user(user_id: str) -> User:
        return User(
            id=user_id,
            email="alice@example.com",
            name="Alice",
            password_hash="x",
            created_at=datetime.now(UTC),
        )

    with sessions.begin() as session:
        session.add(user("1"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(user("2"))
