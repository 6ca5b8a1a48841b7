"""The orders service's ASGI app: its lifespan opens the store, bus, relay and consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from microshop.orders.api import router
from microshop.orders.handlers import QUEUE, ROUTING_KEYS, PaymentOutcomeHandler, SettledOrders
from microshop.orders.settings import OrdersSettings
from microshop.orders.store import OrderStore
from microshop.platform.outbox import OutboxRelay
from microshop.platform.runtime import open_bus, token_verifier
from microshop.platform.telemetry import ServiceTelemetry
from microshop.platform.web import create_app as create_platform_app


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    verifier = token_verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry: ServiceTelemetry = app.state.telemetry
        store = OrderStore(settings.database_url, settings.database_name, telemetry.tracer)
        await run_in_threadpool(store.prepare)
        telemetry.metrics.watch_outbox(store.backlog)
        bus = open_bus(settings, telemetry)
        relay = OutboxRelay(store, bus, settings.outbox_poll_seconds, "orders")
        app.state.store, app.state.bus, app.state.relay = store, bus, relay
        await run_in_threadpool(
            bus.subscribe, QUEUE, ROUTING_KEYS, PaymentOutcomeHandler(store, settled)
        )
        relay.start()
        try:
            yield
        finally:
            relay.stop()
            await run_in_threadpool(bus.close)
            store.close()

    app = create_platform_app(
        title="microshop orders",
        service="orders",
        settings=settings,
        lifespan=lifespan,
        readiness=lambda app: {"database": app.state.store.ping, "bus": app.state.bus.ping},
    )
    settled = SettledOrders(app.state.telemetry.metrics.registry)
    app.state.token_verifier = verifier
    app.include_router(router)
    return app
