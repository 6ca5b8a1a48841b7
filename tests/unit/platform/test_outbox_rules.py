"""The SQL outbox and inbox to the letter: times kept in UTC whatever the local zone, and a
rolled-back event that never wakes the relay, even in a session used again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from microshop.platform.bus import OutgoingMessage
from microshop.platform.outbox import OutboxRelay, SqlInbox, SqlOutbox, to_message
from tests.support.events import order_created
from tests.support.outbox_schema import Effect, Inbox, Outbox
from tests.support.polling import wait_until
from tests.unit.platform.conftest import SqlStore
from tests.unit.platform.test_outbox import FlakyBus


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone nine hours ahead of UTC (Tokyo has no summer time)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_an_event_waiting_is_aged_from_utc_whatever_the_local_zone(
    store: SqlStore, far_from_utc: None
) -> None:
    outbox = SqlOutbox(store.sessions, Outbox)
    with store.sessions.begin() as session:
        outbox.add(session, order_created())

    count, age = outbox.backlog()

    assert count == 1
    assert 0 <= age < 60


def test_an_inbox_mark_is_stamped_in_utc_whatever_the_local_zone(
    store: SqlStore, far_from_utc: None
) -> None:
    inbox = SqlInbox(store.sessions, Inbox, consumer="payments")

    inbox.process_once("e-1", lambda session: None)

    with store.sessions() as session:
        [stamped] = session.scalars(select(Inbox.processed_at))
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60


def test_a_rolled_back_event_does_not_wake_the_relay_when_the_session_commits_later(
    store: SqlStore,
) -> None:
    outbox = SqlOutbox(store.sessions, Outbox)
    woken: list[str] = []
    outbox.on_commit = lambda: woken.append("woken")

    with store.sessions() as session:
        with pytest.raises(RuntimeError), session.begin():
            outbox.add(session, order_created())
            raise RuntimeError("the state change failed")
        with session.begin():
            session.add(Effect(event_id="no-event"))

    assert woken == []


def test_a_rollback_without_an_event_is_only_a_rollback(store: SqlStore) -> None:
    SqlOutbox(store.sessions, Outbox)  # listening on the sessions

    with pytest.raises(RuntimeError, match="the change failed"), store.sessions.begin() as session:
        session.add(Effect(event_id="no-event"))
        raise RuntimeError("the change failed")


def test_a_batch_is_at_most_its_size_and_an_empty_outbox_publishes_nothing(
    store: SqlStore,
) -> None:
    outbox = SqlOutbox(store.sessions, Outbox, batch=3)
    batches: list[int] = []
    with store.sessions.begin() as session:
        for _ in range(4):
            outbox.add(session, order_created())

    sent = [outbox.relay_batch(lambda messages: batches.append(len(messages))) for _ in range(3)]

    assert sent == [3, 1, 0]
    assert batches == [3, 1]  # nothing was published for the empty outbox


def test_a_relay_batch_holds_at_most_a_hundred_events(store: SqlStore) -> None:
    outbox = SqlOutbox(store.sessions, Outbox)
    with store.sessions.begin() as session:
        for _ in range(101):
            outbox.add(session, order_created())

    assert outbox.relay_batch(lambda messages: None) == 100
    assert outbox.relay_batch(lambda messages: None) == 1


def test_each_outbox_is_woken_only_by_its_own_events(store: SqlStore) -> None:
    first, second = SqlOutbox(store.sessions, Outbox), SqlOutbox(store.sessions, Outbox)
    woken: list[str] = []
    first.on_commit = lambda: woken.append("first")
    second.on_commit = lambda: woken.append("second")

    with store.sessions.begin() as session:
        first.add(session, order_created())
    with store.sessions.begin() as session:
        second.add(session, order_created())

    assert woken == ["first", "second"]


class CountingSource:
    """An outbox source that counts the relay's calls and hands out one event once."""

    def __init__(self) -> None:
        self.calls = 0
        self.pending = [order_created()]
        self.published: list[str] = []

    def relay_batch(self, publish: Callable[[Sequence[OutgoingMessage]], None]) -> int:
        self.calls += 1
        if not self.pending:
            return 0
        event = self.pending.pop()
        publish([to_message(event)])
        self.published.append(event.event_id)
        return 1


def test_an_idle_relay_polls_at_its_interval_and_finds_events_without_a_kick() -> None:
    source = CountingSource()
    relay = OutboxRelay(source, FlakyBus(), poll_seconds=0.05)
    relay.start()
    try:
        wait_until(lambda: source.published, timeout=5)  # never kicked
        calls = source.calls
        time.sleep(0.5)  # what is measured is how often it polls meanwhile
        polls = source.calls - calls
    finally:
        relay.stop()

    assert 3 <= polls <= 15  # about one per 0.05 s, not a busy loop
