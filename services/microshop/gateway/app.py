"""The gateway's ASGI app: the /api/v1 proxy, health and readiness, and the public API docs."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from microshop.gateway.openapi import install_public_openapi
from microshop.gateway.proxy import ApiDispatch, ApiProxy, Upstreams, proxy_route
from microshop.gateway.settings import GatewaySettings
from microshop.platform.auth import TokenVerifier
from microshop.platform.runtime import token_verifier
from microshop.platform.telemetry import HttpTelemetry, ServiceTelemetry
from microshop.platform.web import ReadinessCheck, RequestIdMiddleware
from microshop.platform.web import create_app as create_service_app


def _upstream_readiness(upstreams: Upstreams) -> Callable[[FastAPI], Mapping[str, ReadinessCheck]]:
    """Readiness checks that probe every upstream's /healthz at the same time.

    The platform runs checks one after another in worker threads. Scheduling all probes on the
    event loop first (this is called from the async /readyz handler) makes them concurrent, so
    /readyz with every service down takes one readiness timeout, not four.
    """

    def checks(app: FastAPI) -> Mapping[str, ReadinessCheck]:
        loop = asyncio.get_running_loop()
        wait = upstreams.settings.readiness_timeout_seconds + 1.0
        probes = {
            name: asyncio.run_coroutine_threadsafe(upstreams.healthy(name), loop)
            for name in upstreams.base_urls
        }
        return {name: functools.partial(probe.result, wait) for name, probe in probes.items()}

    return checks


def create_app(settings: GatewaySettings, verifier: TokenVerifier | None = None) -> FastAPI:
    """A gateway app; everything it holds is created here or in its lifespan (no module state).

    Tokens are checked with `settings.jwt_public_key` unless a verifier is given.
    """
    verifier = verifier or token_verifier(settings)
    upstreams = Upstreams(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await upstreams.start()
        try:
            yield
        finally:
            await upstreams.close()

    app = create_service_app(
        title="microshop",
        service="gateway",
        settings=settings,
        version="1.0.0",
        lifespan=lifespan,
        readiness=_upstream_readiness(upstreams),
    )
    app.state.token_verifier = verifier
    app.state.upstreams = upstreams
    # Outermost user middleware: /api/v1 skips FastAPI's routing; the proxy gets the platform's
    # request-id handling and unexpected errors still reach the platform's 500 handler.
    # The proxy records its own requests (per route prefix) into the app's telemetry.
    telemetry: ServiceTelemetry = app.state.telemetry
    proxy = ApiProxy(upstreams, verifier, telemetry.tracer)
    api = RequestIdMiddleware(HttpTelemetry(proxy, telemetry, route_of=proxy_route))
    app.add_middleware(ApiDispatch, api=api)
    install_public_openapi(app)
    return app
