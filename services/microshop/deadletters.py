"""`microshop-service dead-letters list|show|replay`: the dead-letter queues, operable.

Given the bus URL (`--bus-url` or MICROSHOP_BUS_URL), it shows each dead letter's queue, why it
was given up (tries exhausted, poison message, unhandled event type), its tries and its first
and last error, and replays chosen messages to their queue: published back (confirmed) as a
first delivery, then removed from the dead-letter queue. Consumers are idempotent by event id,
so a replay of something already applied changes nothing.

Reading a queue takes every message unacknowledged and hands back what is not replayed when
the connection closes, so nothing is lost if this tool is interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import pika
from pika.adapters.blocking_connection import BlockingChannel

from microshop.platform.bus.base import (
    ATTEMPT_HEADER,
    DEAD_REASON_HEADER,
    DELIVERY_HEADERS,
    FIRST_ERROR_HEADER,
    LAST_ERROR_HEADER,
)
from microshop.platform.bus.rabbit import PERSISTENT, dead_letter_queue_name

# The queues the shop's consumers read (their handlers.py); --queue names others.
QUEUES = ("payments.order-events", "orders.payment-events", "notifications.payment-events")


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    delivery_tag: int
    message_id: str
    event_type: str
    reason: str
    tries: int
    first_error: str
    last_error: str
    headers: dict[str, Any]
    body: bytes
    properties: pika.BasicProperties

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "message_id": self.message_id,
            "type": self.event_type,
            "reason": self.reason,
            "tries": self.tries,
            "first_error": self.first_error,
            "last_error": self.last_error,
        }


@contextmanager
def channel_of(url: str) -> Iterator[BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()  # every message taken and not acked goes back


def read(channel: BlockingChannel, queue: str) -> list[DeadLetter]:
    """Every message of `queue`'s dead-letter queue, taken unacknowledged."""
    dead = dead_letter_queue_name(queue)
    letters: list[DeadLetter] = []
    while True:
        method, properties, body = channel.basic_get(dead)
        if method is None:
            return letters
        headers = {str(k): v for k, v in (properties.headers or {}).items()}

        def text(name: str, headers: dict[str, Any] = headers) -> str:
            value = headers.get(name, "")
            return value.decode() if isinstance(value, bytes) else str(value)

        letters.append(
            DeadLetter(
                queue=queue,
                delivery_tag=method.delivery_tag,
                message_id=properties.message_id or "",
                event_type=properties.type or method.routing_key,
                reason=text(DEAD_REASON_HEADER) or "unknown",
                tries=int(text(ATTEMPT_HEADER) or "1"),
                first_error=text(FIRST_ERROR_HEADER),
                last_error=text(LAST_ERROR_HEADER),
                headers=headers,
                body=body,
                properties=properties,
            )
        )


def replay(channel: BlockingChannel, letter: DeadLetter) -> None:
    """Publish `letter` back to its queue as a first delivery, then drop it from the dead."""
    headers = {k: v for k, v in letter.headers.items() if k not in DELIVERY_HEADERS}
    channel.basic_publish(
        "",
        letter.queue,
        letter.body,
        pika.BasicProperties(
            content_type=letter.properties.content_type,
            delivery_mode=PERSISTENT,
            message_id=letter.message_id,
            headers=headers,
            type=letter.event_type,
        ),
        mandatory=True,
    )
    channel.basic_ack(letter.delivery_tag)


def _queues(args: argparse.Namespace) -> Sequence[str]:
    return args.queue or QUEUES


def run(args: argparse.Namespace, out: TextIO) -> int:
    with channel_of(args.bus_url) as channel:
        if args.action == "list":
            for queue in _queues(args):
                letters = read(channel, queue)
                print(f"{dead_letter_queue_name(queue)}: {len(letters)}", file=out)
                for letter in letters:
                    print(
                        f"  {letter.message_id}  {letter.event_type}  {letter.reason}"
                        f"  tries={letter.tries}\n    first: {letter.first_error}"
                        f"\n    last:  {letter.last_error}",
                        file=out,
                    )
            return 0
        chosen = set(args.ids)
        found = []
        for queue in _queues(args):
            for letter in read(channel, queue):
                if args.all or letter.message_id in chosen:
                    found.append(letter)
        missing = chosen - {letter.message_id for letter in found}
        if args.action == "show":
            for letter in found:
                shown = letter.summary()
                try:
                    shown["body"] = json.loads(letter.body)
                except ValueError:
                    shown["body"] = letter.body.decode(errors="replace")
                shown["headers"] = {k: str(v) for k, v in letter.headers.items()}
                print(json.dumps(shown, indent=2, default=str), file=out)
        else:
            for letter in found:
                replay(channel, letter)
                print(f"replayed {letter.message_id} to {letter.queue}", file=out)
        for message_id in sorted(missing):
            print(f"no dead letter {message_id}", file=sys.stderr)
        return 1 if missing or not found else 0


def add_parser(sub: Any) -> None:
    """The `dead-letters` command of `python -m microshop`."""
    parser = sub.add_parser("dead-letters", help="list, show or replay dead-lettered messages")
    parser.add_argument("action", choices=["list", "show", "replay"])
    parser.add_argument("ids", nargs="*", help="message ids (show, replay)")
    parser.add_argument("--all", action="store_true", help="every dead letter (show, replay)")
    parser.add_argument(
        "--queue",
        action="append",
        help=f"a consumer's queue (repeatable; default: {', '.join(QUEUES)})",
    )
    parser.add_argument("--bus-url", default="", help="amqp://… (default: MICROSHOP_BUS_URL)")


def main(args: argparse.Namespace) -> int:
    if not args.bus_url:
        from microshop.platform.settings import DatabaseSettings

        args.bus_url = DatabaseSettings().bus_url  # MICROSHOP_BUS_URL, read where settings are
    if not args.bus_url.startswith(("amqp://", "amqps://")):
        print("dead-letters: give --bus-url amqp://… or set MICROSHOP_BUS_URL", file=sys.stderr)
        return 2
    if args.action != "list" and not (args.ids or args.all):
        print(f"dead-letters {args.action}: name message ids or --all", file=sys.stderr)
        return 2
    return run(args, sys.stdout)
