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

from microshop.platform import retry
from microshop.platform.errors import Unavailable
from microshop.platform.failures import infrastructure_failure
from microshop.platform.retry import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")


class Waiting:
    """Stands in on `app.state` for resources still being opened: any use of it is a 503."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.reason = "starting"
        self.error: BaseException | None = None

    def __getattr__(self, attribute: str) -> Any:
        raise Unavailable(f"{self.what} not reachable yet: {self.reason}")


@asynccontextmanager
async def opened_when_reachable(
    what: str,
    open_: Callable[[], T],
    on_open: Callable[[T], Awaitable[None]],
    close: Callable[[T], None],
    backoff: Backoff,
) -> AsyncIterator[Waiting]:
    """Open `open_()` now or, failing that, in the background with `backoff`; close at exit.

    Yields the `Waiting` placeholder to put on `app.state` until `on_open` replaces it.
    """
    waiting = Waiting(what)
    opened: list[T] = []

    async def attempt() -> None:
        try:
            resource = await run_in_threadpool(open_)
            try:
                await on_open(resource)
            except Exception:
                await run_in_threadpool(close, resource)
                raise
        except Exception as exc:
            # Shown on the public port: a fixed reason; the exception's text goes to the log.
            waiting.reason = infrastructure_failure(exc) or f"failing ({type(exc).__name__})"
            waiting.error = exc
            raise
        opened.append(resource)

    async def keep_trying() -> None:
        await retry.forever(backoff, log, f"opening the {what}")(attempt)
        log.info("%s reachable: serving", what)

    retrying: asyncio.Task[None] | None = None
    try:
        await attempt()
    except Exception:
        log.warning("%s not reachable yet; retrying: %r", what, waiting.error)
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
