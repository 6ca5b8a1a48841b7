"""The inbox's at-most-once rule on the real PostgreSQL: a twin delivery of an event, arriving
while the first is inside its transaction, waits for it on the mark's unique key and then does
nothing (the SQLite case is in tests/unit/platform/test_outbox.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from microshop.platform.outbox import SqlInbox
from tests.support.outbox_schema import Effect, Inbox
from tests.unit.platform.test_outbox import record, twin_waits_for_the_first

pytestmark = pytest.mark.integration


def effects(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Effect.event_id).order_by(Effect.id)))


def test_a_twin_delivery_waits_for_the_first_and_then_does_nothing(
    sessions: sessionmaker[Session],
) -> None:
    inbox = SqlInbox(sessions, Inbox, consumer="payments")

    assert twin_waits_for_the_first(inbox) == (True, [False])
    assert effects(sessions) == ["e-1"]


def test_a_delivery_after_the_first_committed_does_nothing(
    sessions: sessionmaker[Session],
) -> None:
    inbox = SqlInbox(sessions, Inbox, consumer="payments")

    assert inbox.process_once("e-1", record("e-1")) is True
    assert inbox.process_once("e-1", record("e-1")) is False
    assert effects(sessions) == ["e-1"]
