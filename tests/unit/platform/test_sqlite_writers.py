"""The writers of one process queue on the engine's lock for a SQLite file, not in SQLite's busy
handler: the lock is taken by a transaction's first write and given back by its commit, its
rollback, or the pool's reset when the connection is returned (platform/db.py queue_writers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from microshop.platform import db


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def write_lock(engine: Engine) -> threading.Lock:
    with engine.connect() as connection:
        lock = connection.connection.dbapi_connection.write_lock  # type: ignore[union-attr]
    assert isinstance(lock, type(threading.Lock()))
    return lock


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_a_write_takes_the_lock_until_its_commit_and_a_read_takes_none(engine: Engine) -> None:
    lock = write_lock(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM t")).all()
        assert not lock.locked()
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert lock.locked()
        connection.execute(text("INSERT INTO t VALUES (2)"))  # the same transaction: no wait
        connection.commit()
        assert not lock.locked()
    assert count(engine) == 2


@pytest.mark.parametrize("ending", ["rollback", "returned to the pool"])
def test_a_rollback_or_a_connection_returned_unfinished_gives_the_lock_back(
    engine: Engine, ending: str
) -> None:
    lock = write_lock(engine)
    with engine.connect() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert lock.locked()
        if ending == "rollback":
            connection.rollback()
            assert not lock.locked()
    assert not lock.locked()
    assert count(engine) == 0


def test_a_second_writer_waits_on_the_lock_and_goes_once_the_first_commits(
    engine: Engine,
) -> None:
    lock = write_lock(engine)
    second_done = threading.Event()

    def second() -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (2)"))
        second_done.set()

    with engine.connect() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second)
        thread.start()
        assert not second_done.wait(0.3)  # it waits for this transaction
        connection.commit()
    thread.join(10)
    assert second_done.is_set() and not lock.locked()
    assert count(engine) == 2
