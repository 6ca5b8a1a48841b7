"""The notifications service's ASGI app: its lifespan opens the database, bus and consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from microshop.notifications.api import router
from microshop.notifications.handlers import QUEUE, ROUTING_KEYS, PaymentSucceededHandler
from microshop.notifications.settings import NotificationsSettings
from microshop.platform.runtime import SqlRuntime, token_verifier
from microshop.platform.web import create_app as create_platform_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()
    verifier = token_verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No outbox: this service publishes nothing; it only consumes.
        runtime = await run_in_threadpool(
            SqlRuntime.open, settings, MIGRATIONS, None, "notifications"
        )
        app.state.runtime = runtime
        await run_in_threadpool(
            runtime.subscribe, QUEUE, ROUTING_KEYS, PaymentSucceededHandler(runtime)
        )
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = create_platform_app(
        title="microshop notifications",
        lifespan=lifespan,
        readiness=lambda app: app.state.runtime.readiness(),
    )
    app.state.token_verifier = verifier
    app.include_router(router)
    return app
