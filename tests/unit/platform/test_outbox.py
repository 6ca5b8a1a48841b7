"""The transactional outbox publishes exactly what was committed, at least once; the inbox runs a
consumer's change once per event_id, in one transaction with its mark."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from microshop.events import parse_event
from microshop.platform.bus import Bus, Handler, OutgoingMessage, Unroutable
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.outbox import OutboxRelay, SqlInbox, SqlOutbox
from tests.support.events import order_created
from tests.support.outbox_schema import Effect, Inbox, Outbox
from tests.support.polling import wait_until
from tests.unit.platform.conftest import FAST_BACKOFF, FAST_RETRY, SqlStore


class FlakyBus(Bus):
    """Records what it published; refuses every publish while `down` is set."""

    def __init__(self) -> None:
        super().__init__(FAST_RETRY)
        self.published: list[OutgoingMessage] = []
        self.refused = 0
        self.down = threading.Event()
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        with self._lock:
            if self.down.is_set():
                self.refused += 1
                raise ConnectionError("broker unreachable")
            self.published.extend(messages)

    def ids(self) -> list[str]:
        with self._lock:
            return [m.message_id for m in self.published]

    def subscribe(self, queue: str, routing_keys: Sequence[str], handler: Handler) -> None:
        raise NotImplementedError

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def outbox(store: SqlStore) -> SqlOutbox:
    return SqlOutbox(store.sessions, Outbox)


@pytest.fixture
def bus() -> FlakyBus:
    return FlakyBus()


@pytest.fixture
def relay(outbox: SqlOutbox, bus: FlakyBus) -> Iterator[OutboxRelay]:
    relay = OutboxRelay(outbox, bus, poll_seconds=0.02, name="test", backoff=FAST_BACKOFF)
    relay.start()
    yield relay
    relay.stop()


def pending(store: SqlStore) -> list[str]:
    with store.sessions() as session:
        return list(session.scalars(select(Outbox.event_id).order_by(Outbox.id)))


def test_committed_events_are_published_then_removed(
    store: SqlStore, outbox: SqlOutbox, bus: FlakyBus, relay: OutboxRelay
) -> None:
    events = [order_created(), order_created()]
    with store.sessions.begin() as session:
        for event in events:
            outbox.add(session, event, headers={"x-request-id": "req-1"})
    relay.kick()

    wait_until(lambda: len(bus.published) == 2)
    wait_until(lambda: pending(store) == [])
    first = bus.published[0]
    assert [m.message_id for m in bus.published] == [e.event_id for e in events]
    assert (first.routing_key, first.headers) == ("order.created", {"x-request-id": "req-1"})
    assert parse_event(first.body) == events[0]
    assert outbox.backlog() == (0, 0.0)


def test_a_rolled_back_transaction_publishes_nothing(
    store: SqlStore, outbox: SqlOutbox, bus: FlakyBus, relay: OutboxRelay
) -> None:
    discarded, kept = order_created(), order_created()
    with pytest.raises(RuntimeError), store.sessions.begin() as session:
        outbox.add(session, discarded)
        raise RuntimeError("the state change failed")
    with store.sessions.begin() as session:
        outbox.add(session, kept)
    relay.kick()

    wait_until(lambda: pending(store) == [])
    assert bus.ids() == [kept.event_id]


def test_a_failed_publish_keeps_the_rows_and_sends_them_later(
    store: SqlStore, outbox: SqlOutbox, bus: FlakyBus, relay: OutboxRelay
) -> None:
    bus.down.set()
    events = [order_created() for _ in range(3)]
    with store.sessions.begin() as session:
        for event in events:
            outbox.add(session, event)
    relay.kick()

    wait_until(lambda: bus.refused >= 2)
    assert pending(store) == [e.event_id for e in events]
    count, age = outbox.backlog()
    assert count == 3 and age >= 0

    bus.down.clear()
    wait_until(lambda: pending(store) == [])
    assert bus.ids() == [e.event_id for e in events]


class CountingMemoryBus(MemoryBus):
    def __init__(self) -> None:
        super().__init__(FAST_RETRY)
        self.unroutable = 0

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        try:
            super().publish(messages)
        except Unroutable:
            self.unroutable += 1
            raise


def test_events_wait_in_the_outbox_until_a_queue_is_bound(store: SqlStore) -> None:
    """The in-process bus refuses what nobody consumes yet; the outbox holds it till then."""
    memory = CountingMemoryBus()
    outbox = SqlOutbox(store.sessions, Outbox)
    relay = OutboxRelay(outbox, memory, poll_seconds=0.02, name="unroutable", backoff=FAST_BACKOFF)
    relay.start()
    try:
        event = order_created()
        with store.sessions.begin() as session:
            outbox.add(session, event)
        relay.kick()
        wait_until(lambda: memory.unroutable >= 2)
        assert pending(store) == [event.event_id]

        received: list[str] = []
        memory.subscribe("payments", ["order.created"], lambda m: received.append(m.message_id))

        wait_until(lambda: received == [event.event_id], timeout=15)
        wait_until(lambda: pending(store) == [])
    finally:
        relay.stop()
        memory.close()


def effects(store: SqlStore) -> list[str]:
    with store.sessions() as session:
        return list(session.scalars(select(Effect.event_id).order_by(Effect.id)))


def record(event_id: str) -> Callable[[Session], None]:
    def change(session: Session) -> None:
        session.add(Effect(event_id=event_id))

    return change


def test_the_inbox_runs_a_change_once_per_event_id(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, Inbox, consumer="payments")

    assert inbox.process_once("e-1", record("e-1")) is True
    assert inbox.process_once("e-1", record("e-1")) is False
    assert inbox.process_once("e-2", record("e-2")) is True

    assert effects(store) == ["e-1", "e-2"]


def test_each_consumer_keeps_its_own_marks(store: SqlStore) -> None:
    payments = SqlInbox(store.sessions, Inbox, consumer="payments")
    notifications = SqlInbox(store.sessions, Inbox, consumer="notifications")

    assert payments.process_once("e-1", record("e-1")) is True
    assert notifications.process_once("e-1", record("e-1")) is True

    assert effects(store) == ["e-1", "e-1"]


def test_a_change_that_raises_leaves_no_mark_so_the_retry_runs_it(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, Inbox, consumer="payments")

    def half_done(session: Session) -> None:
        session.add(Effect(event_id="e-1"))
        session.flush()
        raise RuntimeError("failed after writing")

    with pytest.raises(RuntimeError):
        inbox.process_once("e-1", half_done)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Inbox)) == 0
    assert effects(store) == []

    assert inbox.process_once("e-1", record("e-1")) is True
    assert effects(store) == ["e-1"]


def twin_waits_for_the_first(inbox: SqlInbox) -> tuple[bool, list[bool]]:
    """Deliver e-1 twice at once: the twin arrives while the first is inside its transaction.
    Returns the first's answer and the twin's."""
    twin: list[bool] = []
    thread = threading.Thread(target=lambda: twin.append(inbox.process_once("e-1", record("e-1"))))

    def first(session: Session) -> None:
        session.add(Effect(event_id="e-1"))
        session.flush()
        thread.start()
        thread.join(0.5)
        # The twin cannot decide before the first's mark is committed or rolled back.
        assert thread.is_alive(), f"the twin did not wait: it answered {twin}"

    answer = inbox.process_once("e-1", first)
    thread.join(35)
    return answer, twin


def test_a_twin_delivery_waits_for_the_first_and_then_does_nothing(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, Inbox, consumer="payments")

    assert twin_waits_for_the_first(inbox) == (True, [False])
    assert effects(store) == ["e-1"]


def test_the_outbox_calls_on_commit_after_a_commit_that_added_events_only(
    store: SqlStore, outbox: SqlOutbox
) -> None:
    commits: list[str] = []
    outbox.on_commit = lambda: commits.append("woken")

    with pytest.raises(RuntimeError), store.sessions.begin() as session:
        outbox.add(session, order_created())
        raise RuntimeError("the state change failed")
    with store.sessions.begin() as session:
        session.add(Effect(event_id="no-event"))
    assert commits == []  # nothing to publish: the relay is left to sleep

    with store.sessions.begin() as session:
        outbox.add(session, order_created())
        outbox.add(session, order_created())
    assert commits == ["woken"]
