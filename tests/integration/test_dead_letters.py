"""Dead letters are operable (issue 10.3): `microshop-service dead-letters list|show|replay`
against a real RabbitMQ shows each one's queue, reason, tries, first and last error, and
replays chosen ones to their queue; the consumer reports the dead-letter queue's depth."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from microshop.platform.bus import IncomingMessage, OutgoingMessage, PoisonMessage, RetryPolicy
from microshop.platform.bus.rabbit import RabbitBus
from tests.integration.test_bus_faults import queue_depths
from tests.support.polling import wait_until

QUEUE = "payments.order-events"
POLICY = RetryPolicy(max_attempts=3, base_delay_seconds=0.1)


def dead_letters(bus_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microshop", "dead-letters", *args, "--queue", QUEUE],
        env={"MICROSHOP_BUS_URL": bus_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


class Handler:
    """Fails every delivery (a bug, or a poison message) until it is fixed."""

    def __init__(self) -> None:
        self.fixed = threading.Event()
        self.handled: list[IncomingMessage] = []
        self.tries: dict[str, int] = {}

    def __call__(self, message: IncomingMessage) -> None:
        self.tries[message.message_id] = self.tries.get(message.message_id, 0) + 1
        if self.fixed.is_set():
            self.handled.append(message)
            return
        if message.message_id == "poison-1":
            raise PoisonMessage("not an order.created")
        raise KeyError(f"bug number {self.tries[message.message_id]}")


def test_dead_letters_are_listed_shown_and_replayed(bus_vhost: str) -> None:
    handler = Handler()
    bus = RabbitBus(bus_vhost, POLICY)
    try:
        bus.subscribe(QUEUE, ["order.created"], handler)
        bus.publish(
            [
                OutgoingMessage("order.created", b'{"n": 1}', "buggy-1", {"x-request-id": "r-1"}),
                OutgoingMessage("order.created", b"not json", "poison-1"),
            ]
        )
        wait_until(lambda: queue_depths(bus_vhost, f"{QUEUE}.dead")[f"{QUEUE}.dead"] == 2)
        assert bus.dead_letter_depths() == {QUEUE: 2}  # what the gauge reports

        listed = dead_letters(bus_vhost, "list")
        assert listed.returncode == 0, listed.stderr
        assert f"{QUEUE}.dead: 2" in listed.stdout
        assert "buggy-1  order.created  tries exhausted  tries=3" in listed.stdout
        assert "first: KeyError: 'bug number 1'" in listed.stdout
        assert "last:  KeyError: 'bug number 3'" in listed.stdout
        assert "poison-1  order.created  poison message  tries=1" in listed.stdout
        # Listing took nothing away.
        assert queue_depths(bus_vhost, f"{QUEUE}.dead")[f"{QUEUE}.dead"] == 2

        shown = dead_letters(bus_vhost, "show", "buggy-1")
        assert shown.returncode == 0, shown.stderr
        letter = json.loads(shown.stdout)
        assert letter["queue"] == QUEUE and letter["body"] == {"n": 1}
        assert letter["headers"]["x-request-id"] == "r-1"
        assert dead_letters(bus_vhost, "show", "nothing-like-it").returncode == 1

        handler.fixed.set()  # the bug is fixed: replay the one it dead-lettered
        replayed = dead_letters(bus_vhost, "replay", "buggy-1")
        assert replayed.returncode == 0, replayed.stderr
        assert f"replayed buggy-1 to {QUEUE}" in replayed.stdout
        [again] = wait_until(lambda: handler.handled)
    finally:
        bus.close()

    assert (again.message_id, again.body, again.routing_key) == (
        "buggy-1",
        b'{"n": 1}',
        "order.created",
    )
    assert again.attempt == 1  # a first delivery again, with all its tries ahead
    assert again.headers["x-request-id"] == "r-1"
    assert queue_depths(bus_vhost, QUEUE, f"{QUEUE}.dead") == {QUEUE: 0, f"{QUEUE}.dead": 1}
