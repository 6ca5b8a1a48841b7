"""Which failures are the infrastructure's (no try spent, 503) and which the code's (retried,
dead-lettered, 500): a table of real exceptions, each raised by the real client library where
that can be done here, and a consumer that pauses on the first kind.

SQLSTATEs from PostgreSQL's documentation, Appendix A "PostgreSQL Error Codes".
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pika.exceptions
import psycopg
import psycopg.errors
import pymongo
import pymongo.errors
import pytest
import sqlalchemy
import sqlalchemy.exc

from microshop.events import OrderCreated
from microshop.platform.bus import IncomingMessage, OutgoingMessage, PoisonMessage
from microshop.platform.bus.base import Pauses
from microshop.platform.bus.memory import MemoryBus
from microshop.platform.errors import Unavailable
from microshop.platform.failures import (
    BROKER,
    NOT_YET,
    READ_ONLY,
    TIMEOUT,
    UNREACHABLE,
    infrastructure_failure,
)
from microshop.platform.retry import Backoff
from tests.support.polling import wait_until
from tests.unit.platform.conftest import FAST_RETRY

QUICK = Backoff(0.01, 0.02)


def raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def sqlalchemy_connect_refused() -> BaseException:
    engine = sqlalchemy.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/db")
    try:
        return raised(engine.connect)
    finally:
        engine.dispose()


def wrapped(error: BaseException) -> BaseException:
    """`error` as the cause of what a store raises on top of it."""
    try:
        raise RuntimeError("the store failed") from error
    except RuntimeError as exc:
        return exc


def mongo_unreachable() -> BaseException:
    client: pymongo.MongoClient = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=50
    )
    try:
        return raised(lambda: client.admin.command("ping"))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (sqlalchemy_connect_refused, UNREACHABLE),
        (lambda: raised(lambda: psycopg.connect("postgresql://x@127.0.0.1:1/x")), UNREACHABLE),
        (lambda: psycopg.errors.AdminShutdown("terminating connection"), UNREACHABLE),  # 57P01
        (
            lambda: psycopg.errors.CannotConnectNow("the database system is starting up"),
            UNREACHABLE,
        ),
        (lambda: psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), READ_ONLY),
        (lambda: psycopg.errors.QueryCanceled("statement timeout"), TIMEOUT),  # 57014
        (lambda: psycopg.errors.TooManyConnections("too many clients"), UNREACHABLE),  # 53300
        (lambda: sqlalchemy.exc.TimeoutError("QueuePool limit reached"), TIMEOUT),
        (mongo_unreachable, TIMEOUT),  # server selection timed out
        (lambda: pymongo.errors.AutoReconnect("connection reset"), UNREACHABLE),
        (lambda: pymongo.errors.NotPrimaryError("not primary"), READ_ONLY),
        (lambda: pymongo.errors.ExecutionTimeout("operation exceeded time limit"), TIMEOUT),
        (lambda: pika.exceptions.StreamLostError("Transport indicated EOF"), BROKER),
        (lambda: Unavailable("database not reachable yet"), NOT_YET),
        (lambda: ConnectionResetError(104, "Connection reset by peer"), UNREACHABLE),
        (lambda: TimeoutError("timed out"), TIMEOUT),
        (lambda: wrapped(psycopg.errors.AdminShutdown("terminating connection")), UNREACHABLE),
    ],
)
def test_the_infrastructure_failing_is_told_apart(
    make: Callable[[], BaseException], reason: str
) -> None:
    assert infrastructure_failure(make()) == reason


@pytest.mark.parametrize(
    "make",
    [
        lambda: ValueError("a bug"),
        lambda: KeyError("order_id"),
        lambda: PoisonMessage("malformed"),
        lambda: psycopg.errors.UniqueViolation("duplicate key"),  # 23505: the handler's
        lambda: psycopg.errors.UndefinedTable("no such table"),  # 42P01: a bug, not an outage
        lambda: psycopg.errors.InvalidCatalogName("database does not exist"),  # 3D000
        lambda: pymongo.errors.DuplicateKeyError("E11000"),
        lambda: pymongo.errors.OperationFailure("bad query", code=2),
        lambda: wrapped(ValueError("a bug")),
    ],
)
def test_a_handler_or_code_failure_is_not_the_infrastructure(
    make: Callable[[], BaseException],
) -> None:
    assert infrastructure_failure(make()) is None


class Database:
    """A handler's database that can be taken away: while it is, the handler and the probe
    raise what SQLAlchemy raises for a refused connection."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = sqlalchemy_connect_refused()
        self.handled: list[IncomingMessage] = []

    def probe(self) -> None:
        if self.down.is_set():
            raise self.refused

    def handler(self, message: IncomingMessage) -> None:
        self.probe()
        self.handled.append(message)


def test_a_consumer_whose_database_is_down_pauses_without_spending_tries() -> None:
    bus = MemoryBus(FAST_RETRY)  # 3 tries, 0.05 s doubling: 0.15 s until a dead letter
    database = Database()
    try:
        bus.subscribe("payments", ["order.created"], database.handler, probe=database.probe)
        database.down.set()
        for n in range(3):
            event = OrderCreated(
                order_id=f"o-{n}", user_id="u", total_cents=1, currency="EUR", payment_method="x"
            )
            bus.publish(
                [OutgoingMessage("order.created", event.model_dump_json().encode(), f"m-{n}")]
            )

        wait_until(lambda: bus.paused() == {"payments": UNREACHABLE})
        # Far longer than the whole retry budget: nothing is dead-lettered, nothing handled.
        threading.Event().wait(1.0)
        assert bus.dead_letters("payments") == []
        assert bus.dead_letter_depths() == {"payments": 0}
        assert bus.paused() == {"payments": UNREACHABLE}

        database.down.clear()  # it answers again: the consumer resumes by itself
        wait_until(lambda: len(database.handled) == 3, timeout=5)
    finally:
        bus.close()

    assert [m.message_id for m in database.handled] == ["m-0", "m-1", "m-2"]
    assert [m.attempt for m in database.handled] == [1, 1, 1]  # no try was counted
    assert bus.paused() == {}
    assert bus.dead_letters("payments") == []


def test_a_queue_two_consumers_hold_stays_paused_until_the_last_of_them_resumes() -> None:
    # RabbitBus runs several consumers per queue; each pauses and resumes on its own.
    pauses = Pauses()
    up = {1: threading.Event(), 2: threading.Event()}
    probed = {1: threading.Event(), 2: threading.Event()}
    stopping = threading.Event()

    def consumer(n: int) -> None:
        def probe() -> None:
            probed[n].set()
            if not up[n].is_set():
                raise ConnectionError("still down")

        pauses.hold("payments", UNREACHABLE, ConnectionError("down"), probe, QUICK, stopping)

    threads = {n: threading.Thread(target=consumer, args=(n,)) for n in up}
    try:
        for thread in threads.values():
            thread.start()
        wait_until(lambda: all(e.is_set() for e in probed.values()))  # both are holding
        up[1].set()
        threads[1].join(timeout=5)
        assert not threads[1].is_alive()
        assert pauses() == {"payments": UNREACHABLE}  # the other consumer is still paused
        up[2].set()
        threads[2].join(timeout=5)
        assert pauses() == {}
    finally:
        stopping.set()


def test_a_handler_failure_still_dead_letters_after_its_tries() -> None:
    bus = MemoryBus(FAST_RETRY)
    tries: list[int] = []

    def buggy(message: IncomingMessage) -> None:
        tries.append(message.attempt)
        raise ValueError("a bug")

    try:
        bus.subscribe("payments", ["order.created"], buggy)
        bus.publish([OutgoingMessage("order.created", b"{}", "m-1")])
        [dead] = wait_until(lambda: bus.dead_letters("payments"))
    finally:
        bus.close()
    assert tries == [1, 2, 3]
    assert dead.attempt == 3
    assert bus.dead_letter_depths() == {"payments": 1}
