"""The gateway on its port: one HTTP server, /api/v1 to the forwarder, the rest to the app."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Awaitable

import uvloop
from fastapi import FastAPI

from microshop.gateway.asgi import AsgiBridge
from microshop.gateway.forwarder import Forwarder
from microshop.gateway.routes import API_PREFIX
from microshop.gateway.server import HttpServer, Request, Responder, ServerLimits
from microshop.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

_BELOW_API = API_PREFIX + "/"


class GatewayServer:
    """Serves a gateway app (`gateway.app.create_app`) on `settings.host`:`settings.port`.

    Offers what standalone mode drives uvicorn's servers with: `serve()`, `started` and
    `should_exit`; `start()` and `stop()` for tests that run it on their own loop.
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        limits: ServerLimits | None = None,
        grace_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.settings = settings = app.state.settings
        self.forwarder: Forwarder = app.state.forwarder
        assert isinstance(settings, GatewaySettings)
        self.bridge = AsgiBridge(app, (settings.host, settings.port))
        limits = limits or ServerLimits.from_settings(settings)
        # An empty FORWARDED_ALLOW_IPS trusts no proxy: the peer is the caller.
        self.http = HttpServer(self.dispatch, limits, settings.forwarded_allow_ips or None)
        self.grace_seconds = grace_seconds
        self.started = False
        self.should_exit = False

    def dispatch(self, request: Request, responder: Responder) -> Awaitable[None]:
        """The handler's coroutine, returned rather than awaited here: one frame less for
        every resumption of the request's task."""
        path = request.path
        if path.startswith(_BELOW_API) or path == API_PREFIX:
            return self.forwarder(request, responder)
        return self.bridge(request, responder)

    @property
    def port(self) -> int:
        return self.http.port

    async def start(self, sock: socket.socket | None = None) -> None:
        await self.bridge.startup()
        try:
            await self.http.start(self.settings.host, self.settings.port, sock)
        except BaseException:
            await self.bridge.shutdown()
            raise
        self.started = True

    async def stop(self) -> None:
        await self.http.stop(self.grace_seconds)
        await self.bridge.shutdown()

    async def serve(self, sock: socket.socket | None = None, *, freeze_heap: bool = False) -> None:
        """Run until `should_exit` is set, then stop gracefully.

        `freeze_heap` (a process of its own): everything made at start-up (modules, the app,
        pools) lives as long as the process, so it is moved out of the garbage collector's
        reach. Unfrozen, a full collection walked it every ~13,000 requests and took ~400 ms on
        the benchmark machine: the p99's spikes.
        """
        await self.start(sock)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            while not self.should_exit:
                await asyncio.sleep(0.1)
        finally:
            await self.stop()


def run(app: FastAPI) -> None:
    """The gateway process: serve until SIGTERM or SIGINT, on uvloop."""
    server = GatewayServer(app)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        await server.serve(freeze_heap=True)

    uvloop.run(main())
