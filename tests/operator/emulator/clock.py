"""The emulator's time: the wall clock plus an offset a test can move forward.

Controllers measure deadlines (a Deployment's progressDeadlineSeconds) on this clock, so a
test says `emulator.advance(601)` instead of waiting ten minutes.
"""

from __future__ import annotations

import datetime
import time


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def stamp(self) -> str:
        """RFC 3339 with a one-second resolution, as metav1.Time serialises."""
        return format_time(self.time())


def format_time(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )
