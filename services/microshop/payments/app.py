"""The payments service's ASGI app: its lifespan opens the database, bus, relay and consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from microshop.payments.api import router
from microshop.payments.handlers import QUEUE, ROUTING_KEYS, OrderCreatedHandler
from microshop.payments.models import PaymentsOutbox
from microshop.payments.settings import PaymentsSettings
from microshop.platform.runtime import SqlRuntime, token_verifier
from microshop.platform.web import create_app as create_platform_app

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    settings = settings or PaymentsSettings()
    verifier = token_verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(
            SqlRuntime.open, settings, MIGRATIONS, PaymentsOutbox, "payments"
        )
        app.state.runtime = runtime
        await run_in_threadpool(
            runtime.subscribe, QUEUE, ROUTING_KEYS, OrderCreatedHandler(runtime)
        )
        try:
            yield
        finally:
            await run_in_threadpool(runtime.close)

    app = create_platform_app(
        title="microshop payments",
        lifespan=lifespan,
        readiness=lambda app: app.state.runtime.readiness(),
    )
    app.state.token_verifier = verifier
    app.include_router(router)
    return app
