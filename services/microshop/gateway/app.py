"""The gateway's app: the /api/v1 forwarder and, for every other path, a FastAPI app (health,
readiness, API docs, the storefront) that owns the forwarder's upstream pools in its lifespan."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from microshop.gateway.apidocs import mount_api_docs
from microshop.gateway.forwarder import Forwarder
from microshop.gateway.openapi import install_public_openapi
from microshop.gateway.routes import RouteTable
from microshop.gateway.settings import GatewaySettings
from microshop.gateway.storefront import mount_storefront
from microshop.gateway.upstream import PoolSettings, UpstreamError, Upstreams
from microshop.platform.auth import TokenVerifier
from microshop.platform.runtime import token_verifier
from microshop.platform.telemetry import ServiceTelemetry
from microshop.platform.web import ReadinessCheck
from microshop.platform.web import create_app as create_service_app

log = logging.getLogger(__name__)


class NotReady(Exception):
    """A service behind the gateway is not ready; the text is what a caller may see."""


async def _probe(upstreams: Upstreams, name: str, timeout: float) -> None:
    pool = upstreams.pools[name]
    try:
        status = await upstreams.probe(name, b"/healthz", timeout)
    except UpstreamError as exc:
        # Addresses and reasons go to the log; the public /readyz names the service only.
        log.warning("readiness: %s at %s does not answer (%s)", name, pool.netloc.decode(), exc)
        raise NotReady("does not answer") from None
    if status != 200:
        log.warning("readiness: %s at %s answered %d", name, pool.netloc.decode(), status)
        raise NotReady(f"answered {status}")


def _upstream_readiness(
    upstreams: Upstreams, timeout: float
) -> Callable[[FastAPI], Mapping[str, ReadinessCheck]]:
    """Readiness checks that probe every upstream's /healthz at the same time.

    The platform runs checks one after another in worker threads. Scheduling all probes on the
    event loop first (this is called from the async /readyz handler) makes them concurrent, so
    /readyz with every service down takes one readiness timeout, not four.
    """

    def checks(app: FastAPI) -> Mapping[str, ReadinessCheck]:
        loop = asyncio.get_running_loop()
        probes = {
            name: asyncio.run_coroutine_threadsafe(_probe(upstreams, name, timeout), loop)
            for name in upstreams.pools
        }
        return {
            name: functools.partial(probe.result, timeout + 1.0) for name, probe in probes.items()
        }

    return checks


def create_app(settings: GatewaySettings, verifier: TokenVerifier | None = None) -> FastAPI:
    """A gateway app; everything it holds is created here or in its lifespan (no module state).

    `app.state.forwarder` answers /api/v1 (the gateway's server calls it without an ASGI cycle);
    the app itself answers everything else. Tokens are checked with `settings.jwt_public_key`
    unless a verifier is given.
    """
    verifier = verifier or token_verifier(settings)
    upstreams = Upstreams(
        settings.upstreams(),
        PoolSettings(
            connect_timeout_seconds=settings.connect_timeout_seconds,
            keepalive_seconds=settings.keepalive_seconds,
            max_connections=settings.max_connections,
        ),
    )

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
        # FastAPI's own docs pages load Swagger UI and ReDoc from a CDN; ours are served here.
        docs_url=None,
        redoc_url=None,
        readiness=_upstream_readiness(upstreams, settings.readiness_timeout_seconds),
    )
    telemetry: ServiceTelemetry = app.state.telemetry
    app.state.settings = settings
    app.state.token_verifier = verifier
    app.state.upstreams = upstreams
    app.state.forwarder = Forwarder(
        RouteTable(),
        upstreams,
        verifier,
        telemetry,
        settings.upstream_timeout_seconds,
    )
    install_public_openapi(app)
    mount_api_docs(app)
    mount_storefront(app)
    return app
