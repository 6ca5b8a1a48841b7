"""Group commit (platform/groupcommit.py) on a real SQLite file: the bodies of the callers waiting
together commit in one transaction, each caller gets its own answer once it is committed, and a
failure fails only its own caller."""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from microshop.platform.groupcommit import GroupCommit
from microshop.platform.outbox import SqlInbox
from tests.support.outbox_schema import Effect
from tests.support.outbox_schema import Inbox as InboxMarks
from tests.unit.platform.conftest import SqlStore

CALLERS = 8


class File:
    """A SQLite file, and the transactions a GroupCommit over it began and committed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0
        self.fail_commits_of_groups_over = 0  # >0: a COMMIT of more bodies than this fails
        self._bodies = 0
        with contextlib.closing(sqlite3.connect(path)) as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[File]:
        self.connection.execute("BEGIN IMMEDIATE")
        self._bodies = 0
        try:
            yield self
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        if self.fail_commits_of_groups_over and self._bodies > self.fail_commits_of_groups_over:
            self.connection.execute("ROLLBACK")
            raise sqlite3.OperationalError("disk I/O error (the test's)")
        self.connection.execute("COMMIT")
        self.commits += 1

    def insert(self, n: int) -> int:
        self._bodies += 1
        self.connection.execute("INSERT INTO t VALUES (?)", (n,))
        return n

    def committed(self) -> list[int]:
        with contextlib.closing(sqlite3.connect(self.path)) as c:
            return [row[0] for row in c.execute("SELECT n FROM t ORDER BY n")]


@pytest.fixture
def file(tmp_path: Path) -> Iterator[File]:
    file = File(tmp_path / "group.db")
    yield file
    file.connection.close()


@pytest.fixture
def writes(file: File) -> Iterator[GroupCommit[File]]:
    writes = GroupCommit("test", file.transaction)
    yield writes
    writes.close()


def inserting(n: int) -> Callable[[File], int]:
    return lambda f: f.insert(n)


def queued(writes: GroupCommit[File], count: int) -> None:
    """Wait until `count` callers are queued behind the body now running."""
    deadline = time.monotonic() + 10
    while writes._queue.qsize() < count:
        assert time.monotonic() < deadline, "the callers did not queue"
        time.sleep(0.001)


def callers_behind_a_slow_one(
    writes: GroupCommit[File], bodies: list[Callable[[File], int]]
) -> list[int | BaseException]:
    """Run `bodies`, one caller each, all queued while a first body holds the writer; what each
    caller got back."""
    answers: list[int | BaseException] = [0] * len(bodies)

    def call(i: int) -> None:
        try:
            answers[i] = writes.run(bodies[i])
        except BaseException as exc:
            answers[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]

    def slow(f: File) -> int:
        for thread in threads:
            thread.start()
        queued(writes, len(bodies))
        return f.insert(0)

    assert writes.run(slow) == 0
    for thread in threads:
        thread.join(10)
    return answers


def test_callers_queued_together_commit_in_one_transaction(
    file: File, writes: GroupCommit[File]
) -> None:
    answers = callers_behind_a_slow_one(writes, [inserting(n) for n in range(1, CALLERS + 1)])

    assert answers == list(range(1, CALLERS + 1))  # each its own answer, in the order they came
    assert file.committed() == list(range(CALLERS + 1))
    assert file.commits == 2  # the slow one's, then one for the eight queued behind it


def test_a_caller_returns_once_its_write_is_committed(
    file: File, writes: GroupCommit[File]
) -> None:
    for n in range(3):
        writes.run(inserting(n))
        assert file.committed() == list(range(n + 1))  # seen from another connection at once
    assert file.commits == 3


def test_a_failing_body_fails_alone_and_the_others_commit(
    file: File, writes: GroupCommit[File]
) -> None:
    def failing(f: File) -> int:
        f.insert(100)  # rolled back with it
        raise ValueError("this caller's own error")

    bodies = [inserting(n) for n in range(1, 4)]
    answers = callers_behind_a_slow_one(writes, [*bodies[:2], failing, bodies[2]])

    assert answers[:2] == [1, 2] and answers[3] == 3
    assert isinstance(answers[2], ValueError) and str(answers[2]) == "this caller's own error"
    assert file.committed() == [0, 1, 2, 3]


def test_a_failed_commit_runs_each_body_again_alone(file: File, writes: GroupCommit[File]) -> None:
    file.fail_commits_of_groups_over = 1
    answers = callers_behind_a_slow_one(writes, [inserting(n) for n in (1, 2, 3)])

    assert answers == [1, 2, 3]
    assert file.committed() == [0, 1, 2, 3]
    assert file.commits == 4  # the group's COMMIT failed: each then committed alone


def test_a_group_takes_at_most_its_limit(file: File) -> None:
    writes = GroupCommit("test", file.transaction, limit=2)
    try:
        answers = callers_behind_a_slow_one(writes, [inserting(n) for n in range(1, 6)])
    finally:
        writes.close()

    assert answers == [1, 2, 3, 4, 5]
    assert file.commits == 4  # the slow one's, then 2 + 2 + 1


class WriterKilled(BaseException):
    """Not an Exception: what the writer does not re-run alone, as a KeyboardInterrupt."""


def test_a_writer_that_dies_fails_the_callers_of_its_group_and_the_next_write_starts_another(
    file: File, writes: GroupCommit[File], monkeypatch: pytest.MonkeyPatch
) -> None:
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))

    def killing(_f: File) -> int:
        raise WriterKilled

    answers = callers_behind_a_slow_one(writes, [inserting(1), killing, inserting(2)])

    # Nobody waits for the dead writer in vain: its group's callers get what killed it.
    assert [type(a) for a in answers] == [WriterKilled] * 3
    assert [type(e) for e in died] == [WriterKilled]
    assert writes.run(inserting(3)) == 3
    assert file.committed() == [0, 3]


def test_a_body_runs_in_its_callers_context(writes: GroupCommit[File]) -> None:
    caller = contextvars.ContextVar("caller", default="none")
    seen: list[str] = []

    def body(_f: File) -> None:
        seen.append(caller.get())

    caller.set("the caller's")
    writes.run(body)

    assert seen == ["the caller's"]  # so its spans are the caller's children


def test_a_bodys_own_write_joins_its_transaction(file: File, writes: GroupCommit[File]) -> None:
    def outer(f: File) -> int:
        return f.insert(1) + writes.run(lambda g: g.insert(2))

    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(writes.run(outer)), daemon=True)
    caller.start()
    caller.join(5)
    assert answers == [3], "the inner write waited for the writer that runs the outer one"
    assert file.commits == 1


# The writer ends at the stop, not by tripping over it: a thread dying of an exception fails it.
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_closing_waits_for_what_was_queued_and_a_later_write_starts_again(
    file: File, writes: GroupCommit[File]
) -> None:
    callers = [threading.Thread(target=writes.run, args=(inserting(n),)) for n in (1, 2)]
    seen_when_closed: list[list[int]] = []

    def close() -> None:
        writes.close()
        seen_when_closed.append(file.committed())

    closer = threading.Thread(target=close)

    def slow(f: File) -> int:
        for caller in callers:
            caller.start()
        queued(writes, 2)
        closer.start()
        queued(writes, 3)  # the two callers, then the closer's stop
        return f.insert(0)

    threading.Thread(target=writes.run, args=(slow,)).start()
    closer_started = time.monotonic() + 10
    while not closer.is_alive() and not seen_when_closed:
        assert time.monotonic() < closer_started
        time.sleep(0.001)
    closer.join(10)

    assert seen_when_closed == [[0, 1, 2]]  # close returned once the queued writes committed
    assert writes._writer is None
    assert writes.run(inserting(3)) == 3
    assert file.committed() == [0, 1, 2, 3]


# -- the inbox of a SQL service on SQLite --------------------------------------------------------


def effects(store: SqlStore) -> list[str]:
    with store.sessions() as session:
        return sorted(e.event_id for e in session.query(Effect))


def deliveries_behind_a_first(inbox: SqlInbox, event_ids: list[str]) -> list[bool | Exception]:
    """Deliver `event_ids` at once, one consumer thread each, all queued while a first event's
    change holds the writer (so that they commit as one group); what each delivery answered."""
    assert inbox._grouped is not None
    answers: list[bool | Exception] = [False] * len(event_ids)

    def change_of(event_id: str) -> Callable[[Session], None]:
        def change(session: Session) -> None:
            session.add(Effect(event_id=event_id))
            if event_id == "bad":
                raise RuntimeError("this event's own error")

        return change

    def deliver(i: int) -> None:
        try:
            answers[i] = inbox.process_once(event_ids[i], change_of(event_ids[i]))
        except RuntimeError as exc:
            answers[i] = exc

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(len(event_ids))]

    def first(session: Session) -> None:
        session.add(Effect(event_id="e-0"))
        for thread in threads:
            thread.start()
        assert inbox._grouped is not None
        deadline = time.monotonic() + 10
        while inbox._grouped._queue.qsize() < len(threads):
            assert time.monotonic() < deadline, "the deliveries did not queue"
            time.sleep(0.001)

    assert inbox.process_once("e-0", first) is True
    for thread in threads:
        thread.join(20)
    inbox.close()
    assert inbox._grouped._writer is None  # closed with the inbox
    return answers


def marks(store: SqlStore) -> list[str]:
    with store.sessions() as session:
        return sorted(m.event_id for m in session.query(InboxMarks))


def test_the_sqlite_inbox_stops_its_writer_with_its_engine(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, InboxMarks, consumer="payments")
    assert inbox._grouped is not None
    assert inbox.process_once("e-1", lambda session: None) is True
    assert inbox._grouped._writer is not None

    store.engine.dispose()  # as the runtime's close does, once its consumers are gone

    assert inbox._grouped._writer is None


def test_twins_in_one_group_of_the_sqlite_inbox_run_once(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, InboxMarks, consumer="payments")

    answers = deliveries_behind_a_first(inbox, ["e-1", "e-1", "e-2", "e-1"])

    assert answers == [True, False, True, False]  # the twins see the first's mark, uncommitted
    assert effects(store) == ["e-0", "e-1", "e-2"]
    assert marks(store) == ["e-0", "e-1", "e-2"]


def test_a_failing_change_in_a_group_of_the_sqlite_inbox_fails_alone(store: SqlStore) -> None:
    inbox = SqlInbox(store.sessions, InboxMarks, consumer="payments")

    answers = deliveries_behind_a_first(inbox, ["e-1", "bad", "e-1", "e-2"])

    assert [answers[i] for i in (0, 2, 3)] == [True, False, True]
    assert isinstance(answers[1], RuntimeError)
    assert effects(store) == ["e-0", "e-1", "e-2"]
    assert marks(store) == ["e-0", "e-1", "e-2"]  # the failed one is left for its retry
