"""The notifications schema refuses a second notification of a kind for one order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from microshop import registry
from microshop.notifications.models import Notification
from microshop.platform.db import make_engine, make_session_factory, migrate


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    migrate(engine, registry.service("notifications").migrations)
    return engine


def test_the_schema_refuses_a_second_notification_of_a_kind_for_one_order(
    engine: Engine,
) -> None:
    sessions = make_session_factory(engine)

    def notification(notification_id: str) -> Notification:
        return Notification(
            id=notification_id,
            user_id="u-1",
            order_id="o-1",
            type="order_paid",
            message="paid",
            created_at=datetime.now(UTC),
        )

    with sessions.begin() as session:
        session.add(notification("1"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(notification("2"))
