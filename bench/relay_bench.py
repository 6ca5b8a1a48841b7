"""Relay hot-path benchmark: one outbox batch called directly and through tenacity's retrying.

The relay calls `relay_batch` through `microshop.platform.retry.until_stopped` on every wake-up
and poll. This measures what that costs against calling it directly, in the same run, for an
empty outbox (the idle poll) and for a batch of 100 events (SQLite, published to a no-op bus),
plus the bare per-call overhead on a function that does nothing.

    .venv/bin/python -m bench.relay_bench [--rounds 5] [--calls 2000]
"""

from __future__ import annotations

import argparse
import functools
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from microshop.platform import db
from microshop.platform.outbox import SqlOutbox
from microshop.platform.retry import RELAY, until_stopped
from tests.support.events import order_created
from tests.support.outbox_schema import Outbox, PlatformTestBase

log = logging.getLogger("bench")


def best_of(
    rounds: int, calls: int, call: Callable[[], object], reset: Callable[[], None]
) -> float:
    """Best mean seconds per call over `rounds` rounds of `calls` calls."""
    means = []
    for _ in range(rounds):
        total = 0.0
        for _ in range(calls):
            reset()
            started = time.perf_counter()
            call()
            total += time.perf_counter() - started
        means.append(total / calls)
    return min(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    retrying = until_stopped(RELAY, threading.Event(), log, "bench")

    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        PlatformTestBase.metadata.create_all(engine)
        outbox = SqlOutbox(db.make_session_factory(engine), Outbox)
        events = [order_created() for _ in range(100)]

        def nothing() -> None:
            pass

        def fill() -> None:
            with outbox.session_factory.begin() as session:
                for event in events:
                    outbox.add(session, event.model_copy(update={"event_id": str(time.time_ns())}))

        def publish(messages: object) -> None:
            pass

        cases: list[tuple[str, Callable[[], object], Callable[[], None], int]] = [
            ("no-op function", nothing, nothing, args.calls * 10),
            ("idle poll (empty outbox)", lambda: outbox.relay_batch(publish), nothing, args.calls),
            ("batch of 100 events", lambda: outbox.relay_batch(publish), fill, args.calls // 20),
        ]
        print(f"{'case':28} {'direct µs':>10} {'tenacity µs':>12} {'ratio':>7}")
        for name, call, reset, calls in cases:
            direct = best_of(args.rounds, calls, call, reset)
            retried = best_of(args.rounds, calls, functools.partial(retrying, call), reset)
            print(f"{name:28} {direct * 1e6:10.1f} {retried * 1e6:12.1f} {retried / direct:7.2f}")
        engine.dispose()
    print("(best of", args.rounds, "rounds; the ratio is what the relay pays for tenacity)")


if __name__ == "__main__":
    main()
