"""Runs an ASGI app (the gateway's FastAPI app: health, docs, storefront) on its server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message

from microshop.gateway.server import Header, Request, Responder
from microshop.platform.context import accept_or_make_request_id

log = logging.getLogger(__name__)


class LifespanFailed(RuntimeError):
    """The app refused to start (`lifespan.startup.failed`) or stopped during start-up."""


class AsgiBridge:
    """One ASGI app's lifespan, and each request answered by it through a Responder.

    What the app sees is what uvicorn gives it for HTTP/1.1: `http` scopes (ASGI 3.0, spec 2.4,
    so `send` raises OSError once the caller has gone), the whole body in one `http.request`
    message, then `http.disconnect` once the answer is done; lifespan state copied into each
    request's scope.
    """

    def __init__(self, app: ASGIApp, server: tuple[str, int] | None = None) -> None:
        self.app = app
        self.server = server
        self.state: dict[str, Any] = {}
        self._lifespan: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None

    # --- lifespan -----------------------------------------------------------------------------

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._started, self._stopped = loop.create_future(), loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        self._lifespan = loop.create_task(self._run_lifespan(scope))
        await self._messages.put({"type": "lifespan.startup"})
        await asyncio.wait({self._started, self._lifespan}, return_when=asyncio.FIRST_COMPLETED)
        if self._started.done():
            self._started.result()
        else:
            raise LifespanFailed("the app stopped during start-up")

    async def _run_lifespan(self, scope: dict[str, Any]) -> None:
        async def send(message: Message) -> None:
            assert self._started is not None and self._stopped is not None
            kind = message["type"]
            failed = LifespanFailed(message.get("message", "") or kind)
            if kind == "lifespan.startup.complete":
                self._started.set_result(None)
            elif kind == "lifespan.startup.failed":
                self._started.set_exception(failed)
            elif kind == "lifespan.shutdown.complete":
                self._stopped.set_result(None)
            elif kind == "lifespan.shutdown.failed":
                self._stopped.set_exception(failed)

        try:
            await self.app(scope, self._messages.get, send)
        except Exception:
            log.exception("the app's lifespan failed")
            for waiter in (self._started, self._stopped):
                if waiter is not None and not waiter.done():
                    waiter.set_exception(LifespanFailed("the app's lifespan raised"))

    async def shutdown(self, timeout: float = 30.0) -> None:
        if self._lifespan is None or self._stopped is None:
            return
        await self._messages.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self._stopped), timeout)
        finally:
            if not self._lifespan.done():
                self._lifespan.cancel()
            self._lifespan = None

    # --- requests -----------------------------------------------------------------------------

    async def __call__(self, request: Request, responder: Responder) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": request.http_version,
            "server": self.server,
            "client": request.client,
            "scheme": request.scheme,
            "method": request.method,
            "root_path": "",
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.query,
            "headers": request.headers,
            "state": self.state.copy(),
            "extensions": {},
        }
        done = asyncio.get_running_loop().create_future()
        body_given = False
        status = 0
        headers: list[Header] = []
        length: int | None = None

        async def receive() -> Message:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await asyncio.shield(done)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, headers, length
            kind = message["type"]
            if responder.finished:
                raise OSError("the response is already complete")
            if kind == "http.response.start":
                if status:
                    raise RuntimeError("http.response.start sent twice")
                status = message["status"]
                headers = []
                for name, value in message.get("headers", ()):
                    name = bytes(name).lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name not in (b"transfer-encoding", b"connection", b"date", b"server"):
                        headers.append((name, bytes(value)))
                return
            if kind != "http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r}")
            if not status:
                raise RuntimeError("http.response.body before http.response.start")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not responder.started:
                if not more and (length is None or length == len(body)):
                    responder.send(status, headers, body)
                    return
                responder.start(status, headers, length)
            await responder.write(body)
            if not more:
                responder.end()

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            if responder.started:
                responder.abort()
            else:
                responder.send_json(500, "internal error", accept_or_make_request_id(None))
        finally:
            done.set_result(None)
        if not responder.finished:
            if responder.started:
                responder.abort()
            else:
                log.error("the app returned without answering %s %s", request.method, request.path)
                responder.send_json(500, "internal error", accept_or_make_request_id(None))
