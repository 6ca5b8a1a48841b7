"""Start serving before the database answers: resources open in the background, with backoff.

In Kubernetes a service whose database or bus is not up yet must stay alive and unready (its
readiness probe says what is missing) rather than exit and crash-loop. The app's lifespan tries
once; if that fails it keeps serving `/healthz`, answers 503 from `/readyz` and from every route
that needs the missing resources, and retries in the background until they open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from microshop.platform.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS = 0.5, 10.0


class Waiting:
    """Stands in on `app.state` for resources still being opened: any use of it is a 503."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.reason = "starting"

    def __getattr__(self, attribute: str) -> Any:
        raise Unavailable(f"{self.what} not reachable yet: {self.reason}")


@asynccontextmanager
async def opened_when_reachable(
    what: str,
    open_: Callable[[], T],
    on_open: Callable[[T], Awaitable[None]],
    close: Callable[[T], None],
) -> AsyncIterator[Waiting]:
    """Open `open_()` now or, failing that, in the background with backoff; close at exit.

    Yields the `Waiting` placeholder to put on `app.state` until `on_open` replaces it.
    """
    waiting = Waiting(what)
    opened: list[T] = []

    async def attempt() -> bool:
        try:
            resource = await run_in_threadpool(open_)
        except Exception as exc:
            return failed(exc)
        try:
            await on_open(resource)
        except Exception as exc:
            await run_in_threadpool(close, resource)
            return failed(exc)
        opened.append(resource)
        return True

    def failed(exc: Exception) -> bool:
        waiting.reason = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("%s not reachable yet; retrying: %s", what, waiting.reason)
        return False

    async def keep_trying() -> None:
        delay = FIRST_RETRY_SECONDS
        while not await attempt():
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
        log.info("%s reachable: serving", what)

    retrying = None
    if not await attempt():
        retrying = asyncio.create_task(keep_trying(), name=f"open {what}")
    try:
        yield waiting
    finally:
        if retrying is not None:
            retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrying
        for resource in opened:
            await run_in_threadpool(close, resource)
