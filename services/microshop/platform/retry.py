"""Retries with exponential backoff (tenacity) for what a service waits on: its database at
start-up, the broker for the outbox relay, the bus consumers' reconnects, and the database of a
consumer paused by its outage.

Each use has a `Backoff` read from the service's settings; the defaults below are the one place
their values are written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import tenacity


@dataclass(frozen=True)
class Backoff:
    """Wait `first_seconds` after the first failure, doubling after each one to `max_seconds`."""

    first_seconds: float
    max_seconds: float

    def wait(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(
            multiplier=self.first_seconds, min=self.first_seconds, max=self.max_seconds
        )


STARTUP = Backoff(first_seconds=0.5, max_seconds=10.0)
RELAY = Backoff(first_seconds=1.0, max_seconds=10.0)
BUS_RECONNECT = Backoff(first_seconds=0.2, max_seconds=5.0)
# A consumer paused because its database is down probes it this often before resuming.
CONSUMER_PROBE = Backoff(first_seconds=0.5, max_seconds=10.0)


def _log_before_sleep(log: logging.Logger, what: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        log.warning(
            "%s failed; retrying in %.1fs: %r",
            what,
            state.next_action.sleep,
            state.outcome.exception(),
        )

    return before_sleep


class Stopped(Exception):
    """Raised instead of waiting for the next try once the retrying thread is asked to stop."""


def until_stopped(
    backoff: Backoff,
    stopping: threading.Event,
    log: logging.Logger,
    what: str,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> tenacity.Retrying:
    """Retry in a thread until the call succeeds or `stopping` is set: then the last error is
    raised, or Stopped if it was set during a wait (which it cuts short)."""

    def sleep(seconds: float) -> None:
        if stopping.wait(seconds):
            raise Stopped

    return tenacity.Retrying(
        wait=backoff.wait(),
        sleep=sleep,
        stop=lambda state: stopping.is_set(),
        retry=tenacity.retry_if_exception_type(retry_on),
        before_sleep=_log_before_sleep(log, what),
        reraise=True,
    )


def forever(backoff: Backoff, log: logging.Logger, what: str) -> tenacity.AsyncRetrying:
    """Retry a coroutine until it succeeds (or the task is cancelled)."""
    return tenacity.AsyncRetrying(
        wait=backoff.wait(), before_sleep=_log_before_sleep(log, what), reraise=True
    )
