"""The users service's ASGI app: its lifespan opens the database (and the bus it is given)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from microshop.platform.auth import TokenIssuer
from microshop.platform.runtime import SqlRuntime, token_verifier
from microshop.platform.web import create_app as create_platform_app
from microshop.users.api import auth_router, users_router
from microshop.users.settings import UsersSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def token_issuer(settings: UsersSettings) -> TokenIssuer:
    if not settings.jwt_private_key:
        raise RuntimeError(
            "MICROSHOP_JWT_PRIVATE_KEY is not set: the users service signs access tokens"
        )
    return TokenIssuer(settings.jwt_private_key, settings.access_token_ttl_seconds)


def create_app(settings: UsersSettings | None = None) -> FastAPI:
    settings = settings or UsersSettings()
    verifier = token_verifier(settings)
    issuer = token_issuer(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No outbox: the users service publishes no events.
        runtime = await run_in_threadpool(
            SqlRuntime.open, settings, MIGRATIONS, None, "users", uses_bus=False
        )
        app.state.runtime = runtime
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = create_platform_app(
        title="microshop users",
        lifespan=lifespan,
        readiness=lambda app: app.state.runtime.readiness(),
    )
    app.state.token_verifier = verifier
    app.state.token_issuer = issuer
    app.include_router(users_router)
    app.include_router(auth_router)
    return app
