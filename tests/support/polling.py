"""The one way tests wait: poll a condition until it holds, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until `condition()` is truthy and return it; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout}s waiting for {what or condition}: {last!r}",
                pytrace=False,
            )
        time.sleep(interval)
