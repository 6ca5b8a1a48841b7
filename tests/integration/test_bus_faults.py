"""The RabbitMQ bus under faults: a poison message, an unroutable event, a broker restart.

Each test runs in a virtual host or on a RabbitMQ node of its own; the restart test stops and
starts a private node, never the machine's broker.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable

import pika
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from microshop.events import EXCHANGE, parse_event
from microshop.platform.bus import IncomingMessage, OutgoingMessage, RetryPolicy, Unroutable
from microshop.platform.bus.rabbit import RabbitBus, dead_letter_queue_name, retry_queue_name
from microshop.platform.outbox import OutboxRelay, SqlInbox, SqlOutbox
from microshop.platform.retry import Backoff
from tests.support.events import order_created
from tests.support.outbox_schema import Effect, Inbox, Outbox
from tests.support.polling import wait_until
from tests.support.servers import RabbitNode

POLICY = RetryPolicy(max_attempts=4, base_delay_seconds=0.2, max_delay_seconds=5.0)


def queue_depths(url: str, *queues: str) -> dict[str, int]:
    """Messages ready in each queue (a passive declare changes nothing)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        return {q: channel.queue_declare(q, passive=True).method.message_count for q in queues}
    finally:
        connection.close()


def test_a_poison_message_goes_through_each_retry_queue_then_to_the_dead_letter_queue(
    bus_vhost: str,
) -> None:
    seen: list[tuple[float, IncomingMessage]] = []

    def poison(message: IncomingMessage) -> None:
        seen.append((time.monotonic(), message))
        raise RuntimeError("this handler never succeeds")

    bus = RabbitBus(bus_vhost, POLICY)
    try:
        bus.subscribe("payments", ["order.created"], poison)
        bus.publish(
            [OutgoingMessage("order.created", b'{"poison": true}', "m-1", {"x-request-id": "r-1"})]
        )
        dead = wait_until(lambda: bus.dead_letters("payments"), timeout=20)
    finally:
        bus.close()

    assert [m.attempt for _, m in seen] == [1, 2, 3, 4]
    assert {m.routing_key for _, m in seen} == {"order.created"}
    times = [t for t, _ in seen]
    waits = [later - earlier for earlier, later in itertools.pairwise(times)]
    for attempt, waited in enumerate(waits, start=2):
        # Each retry waited out its own queue's TTL: 0.2 s, 0.4 s, 0.8 s.
        assert waited >= POLICY.delay_before(attempt) * 0.9, waits
    assert waits == sorted(waits)

    [letter] = dead
    assert (letter.routing_key, letter.body, letter.message_id) == (
        "order.created",
        b'{"poison": true}',
        "m-1",
    )
    assert letter.headers["x-request-id"] == "r-1"
    assert letter.attempt == POLICY.max_attempts  # how many times the handler was tried
    # Acked everywhere it passed through: the consumer is gone and nothing came back.
    retries = [retry_queue_name("payments", n, POLICY) for n in range(2, POLICY.max_attempts + 1)]
    assert queue_depths(bus_vhost, "payments", *retries, dead_letter_queue_name("payments")) == {
        "payments": 0,
        **dict.fromkeys(retries, 0),
        dead_letter_queue_name("payments"): 1,
    }


def test_publish_waits_for_the_broker_and_an_unbound_event_stays_in_the_outbox(
    bus_vhost: str, sessions: sessionmaker[Session]
) -> None:
    outbox = SqlOutbox(sessions, Outbox)
    bus = RabbitBus(bus_vhost, POLICY)
    try:
        event = order_created()
        with sessions.begin() as session:
            outbox.add(session, event)

        with pytest.raises(Unroutable):
            bus.publish([OutgoingMessage("order.created", b"{}", "m-1")])
        with pytest.raises(Unroutable):
            outbox.relay_batch(bus.publish)
        assert outbox.backlog()[0] == 1

        # A queue appears (nobody consumes it): the same row now goes out, and is already in
        # the queue when publish returns, because the broker confirmed it.
        connection = pika.BlockingConnection(pika.URLParameters(bus_vhost))
        channel = connection.channel()
        channel.queue_declare("audit", durable=True)
        channel.queue_bind("audit", EXCHANGE, routing_key="order.*")
        connection.close()

        assert outbox.relay_batch(bus.publish) == 1
        assert queue_depths(bus_vhost, "audit") == {"audit": 1}
        assert outbox.backlog()[0] == 0
    finally:
        bus.close()


class InboxConsumer:
    """A consumer whose effect goes through the inbox; it can be held after one commit."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.inbox = SqlInbox(sessions, Inbox, consumer="restart-test")
        self.sessions = sessions
        self.deliveries: Counter[str] = Counter()
        self.hold_after_commit: str | None = None
        self.committed = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, message: IncomingMessage) -> None:
        event = parse_event(message.body)
        with self._lock:
            self.deliveries[event.event_id] += 1
        self.inbox.process_once(event.event_id, self._record(event.event_id))
        if event.event_id == self.hold_after_commit and not self.release.is_set():
            # Committed but not yet acked: the broker goes away now, so it must redeliver.
            self.committed.set()
            self.release.wait(timeout=30)

    @staticmethod
    def _record(event_id: str) -> Callable[[Session], None]:
        def change(session: Session) -> None:
            session.add(Effect(event_id=event_id))

        return change

    def effects(self) -> Counter[str]:
        with self.sessions() as session:
            return Counter(session.scalars(select(Effect.event_id)))


def test_after_a_broker_restart_every_event_takes_effect_exactly_once(
    private_rabbitmq: RabbitNode, sessions: sessionmaker[Session]
) -> None:
    outbox = SqlOutbox(sessions, Outbox)
    consumer = InboxConsumer(sessions)
    consuming = RabbitBus(private_rabbitmq.url, POLICY)
    publishing = RabbitBus(private_rabbitmq.url, POLICY)
    relay = OutboxRelay(
        outbox, publishing, poll_seconds=0.1, name="restart-test", backoff=Backoff(0.2, 10.0)
    )
    expected: list[str] = []

    def produce(count: int) -> None:
        for _ in range(count):
            event = order_created()
            with sessions.begin() as session:
                outbox.add(session, event)
            expected.append(event.event_id)
        relay.kick()

    try:
        consuming.subscribe("payments", ["order.created"], consumer)
        relay.start()
        produce(10)
        wait_until(lambda: len(consumer.effects()) == 10)

        # One event is committed by the consumer and then held unacked; more queue behind it.
        held = order_created()
        consumer.hold_after_commit = held.event_id
        with sessions.begin() as session:
            outbox.add(session, held)
        expected.append(held.event_id)
        relay.kick()
        assert consumer.committed.wait(timeout=10)
        produce(5)
        wait_until(lambda: outbox.backlog()[0] == 0)

        private_rabbitmq.stop_app()
        consumer.release.set()
        produce(10)  # committed while the broker is away: they wait in the outbox
        assert outbox.backlog()[0] == 10
        private_rabbitmq.start_app()

        # Nobody reconnects anything: the consumer and the relay find the broker themselves.
        wait_until(lambda: outbox.backlog()[0] == 0, timeout=30)
        wait_until(lambda: len(consumer.effects()) == len(expected), timeout=30)
    finally:
        relay.stop()
        publishing.close()
        consuming.close()

    assert consumer.effects() == Counter(dict.fromkeys(expected, 1))
    assert consumer.deliveries[held.event_id] >= 2  # redelivered after the restart, deduped
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Inbox)) == len(expected)


def _connections_in(vhost_url: str) -> int:
    vhost = vhost_url.rsplit("/", 1)[1]
    listed = subprocess.run(
        [shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", "list_connections", "-s", "vhost"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return listed.count(vhost)


def test_close_releases_every_publishing_connection_not_only_the_callers(bus_vhost: str) -> None:
    bus = RabbitBus(bus_vhost, POLICY)
    bus.subscribe("payments", ["order.created"], lambda message: None)
    relay_like = threading.Thread(  # the relay publishes from a thread of its own
        target=bus.publish,
        args=([OutgoingMessage("order.created", b"{}", "m-close")],),
    )
    relay_like.start()
    relay_like.join()
    wait_until(lambda: _connections_in(bus_vhost) == 2)  # the consumer's and the relay's

    bus.close()

    wait_until(lambda: _connections_in(bus_vhost) == 0)


def test_a_changed_retry_policy_declares_new_retry_queues_instead_of_failing(
    bus_vhost: str,
) -> None:
    first = RabbitBus(bus_vhost, POLICY)
    first.subscribe("payments", ["order.created"], lambda message: None)
    first.close()
    slower = RetryPolicy(max_attempts=POLICY.max_attempts, base_delay_seconds=1.5)
    assert retry_queue_name("payments", 2, slower) != retry_queue_name("payments", 2, POLICY)
    second = RabbitBus(bus_vhost, slower)
    try:
        # RabbitMQ refuses to redeclare a queue with another TTL; under new names the
        # consumer declares its topology and starts.
        second.subscribe("payments", ["order.created"], lambda message: None)
        assert second._consumers[0].declared.is_set()
    finally:
        second.close()


def test_consumers_side_by_side_each_take_a_message_while_the_others_wait(
    bus_vhost: str,
) -> None:
    # A handler that waits on its database must not hold up the queue behind it: three
    # deliveries are in three handlers at once (one consumer would wait at the barrier alone).
    together = threading.Barrier(3, timeout=10)
    handled: list[str] = []
    bus = RabbitBus(bus_vhost, POLICY, consumers=3)
    try:

        def waits(message: IncomingMessage) -> None:
            together.wait()
            handled.append(message.message_id)

        bus.subscribe("payments", ["order.created"], waits)
        assert len(bus._consumers) == 3 and all(c.declared.is_set() for c in bus._consumers)
        bus.publish([OutgoingMessage("order.created", b"{}", f"m-{n}") for n in range(3)])
        wait_until(lambda: len(handled) == 3)
        assert sorted(handled) == ["m-0", "m-1", "m-2"]  # each once: the barrier never broke
        assert not bus.dead_letters("payments")
    finally:
        bus.close()
