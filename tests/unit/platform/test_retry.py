"""Retries with backoff (tenacity), configured from settings: start-up, the relay, reconnects."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import pytest

from microshop.platform import retry
from microshop.platform.outbox import OutboxRelay, SqlOutbox
from microshop.platform.retry import Backoff, Stopped, until_stopped
from microshop.platform.settings import ServiceSettings
from microshop.platform.startup import opened_when_reachable
from tests.support.events import order_created
from tests.support.outbox_schema import Outbox
from tests.support.polling import wait_until
from tests.unit.platform.conftest import SqlStore
from tests.unit.platform.test_outbox import FlakyBus

log = logging.getLogger(__name__)


class RecordedWaits(threading.Event):
    """A stop event whose waits return at once and are recorded; set after `stop_after` waits."""

    def __init__(self, stop_after: int | None = None) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.stop_after = stop_after

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if self.stop_after is not None and len(self.waits) >= self.stop_after:
            self.set()
        return self.is_set()


def failing(
    times: int, error: type[Exception] = ConnectionError
) -> tuple[Callable[[], str], list[int]]:
    """A call that raises `error` its first `times` times, and the calls made."""
    calls: list[int] = []

    def call() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error(f"failure {len(calls)}")
        return "done"

    return call, calls


def test_waits_start_at_the_first_delay_and_double_up_to_the_cap() -> None:
    stopping = RecordedWaits()
    call, calls = failing(5)

    result = until_stopped(Backoff(0.5, 3.0), stopping, log, "test")(call)

    assert result == "done"
    assert calls == [1, 2, 3, 4, 5, 6]
    assert stopping.waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_stop_during_a_wait_ends_the_retries_at_once() -> None:
    stopping = RecordedWaits(stop_after=2)
    call, calls = failing(100)

    with pytest.raises(Stopped):
        until_stopped(Backoff(0.1, 1.0), stopping, log, "test")(call)

    assert calls == [1, 2]  # no try after the stop


def test_once_stopping_the_last_error_is_raised_without_waiting() -> None:
    stopping = RecordedWaits()
    stopping.set()
    call, calls = failing(100)

    with pytest.raises(ConnectionError, match="failure 1"):
        until_stopped(Backoff(0.1, 1.0), stopping, log, "test")(call)

    assert (calls, stopping.waits) == ([1], [])


def test_only_the_named_errors_are_retried() -> None:
    call, calls = failing(1, error=KeyError)

    with pytest.raises(KeyError):
        until_stopped(Backoff(0.1, 1.0), RecordedWaits(), log, "test", ConnectionError)(call)

    assert calls == [1]


def test_each_retry_is_logged_with_its_wait_and_error(caplog: pytest.LogCaptureFixture) -> None:
    call, _ = failing(1)

    with caplog.at_level(logging.WARNING):
        until_stopped(Backoff(0.5, 1.0), RecordedWaits(), log, "the relay")(call)

    assert caplog.messages == ["the relay failed; retrying in 0.5s: ConnectionError('failure 1')"]


def test_backoffs_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSHOP_STARTUP_RETRY_FIRST_SECONDS", "2")
    monkeypatch.setenv("MICROSHOP_RELAY_RETRY_MAX_SECONDS", "60")
    monkeypatch.setenv("MICROSHOP_BUS_RECONNECT_FIRST_SECONDS", "0.1")

    settings = ServiceSettings()

    assert settings.startup_backoff == Backoff(2.0, retry.STARTUP.max_seconds)
    assert settings.relay_backoff == Backoff(retry.RELAY.first_seconds, 60.0)
    assert settings.bus_reconnect_backoff == Backoff(0.1, retry.BUS_RECONNECT.max_seconds)
    # The waits the hand-written loops had: 0.5 s doubling to 10 s, 1 s to 10 s, 0.2 s to 5 s.
    assert (
        Backoff(0.5, 10.0),
        Backoff(1.0, 10.0),
        Backoff(0.2, 5.0),
    ) == (retry.STARTUP, retry.RELAY, retry.BUS_RECONNECT)


def test_a_backoff_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="relay_retry_first_seconds"):
        ServiceSettings(relay_retry_first_seconds=0)


def test_start_up_keeps_trying_with_its_backoff_until_the_resource_opens() -> None:
    opened: list[str] = []
    closed: list[str] = []
    call, calls = failing(3)

    async def scenario() -> str:
        async def on_open(resource: str) -> None:
            opened.append(resource)

        async with opened_when_reachable(
            "database", call, on_open, closed.append, Backoff(0.01, 0.02)
        ) as waiting:
            # /readyz shows a fixed reason; the exception (its text may name a host) is logged.
            assert waiting.reason == "database unreachable"
            assert repr(waiting.error) == "ConnectionError('failure 1')"
            started = time.monotonic()
            while not opened and time.monotonic() - started < 5:
                await asyncio.sleep(0.01)
            return repr(waiting.error)

    reason = asyncio.run(scenario())

    assert calls == [1, 2, 3, 4]
    assert reason == "ConnectionError('failure 3')"  # the last failure before it opened
    assert opened == ["done"]
    assert closed == ["done"]  # closed at exit


def test_the_relay_retries_a_refused_batch_with_its_backoff_and_stops_during_a_wait(
    store: SqlStore,
) -> None:
    bus = FlakyBus()
    bus.down.set()
    outbox = SqlOutbox(store.sessions, Outbox)
    with store.sessions.begin() as session:
        outbox.add(session, order_created())
    relay = OutboxRelay(outbox, bus, poll_seconds=0.01, backoff=Backoff(0.02, 0.02))
    relay.start()
    wait_until(lambda: bus.refused >= 3, timeout=5)
    slow = OutboxRelay(outbox, bus, poll_seconds=0.01, backoff=Backoff(60.0, 60.0))
    relay.stop()
    refused = bus.refused

    slow.start()
    wait_until(lambda: bus.refused == refused + 1, timeout=5)
    started = time.monotonic()
    slow.stop()

    assert time.monotonic() - started < 2  # the 60 s wait was cut short
    assert bus.refused == refused + 1  # and no try was made after the stop
