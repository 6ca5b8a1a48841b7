"""The orders service's ASGI app: its lifespan opens the store, bus, relay, consumer and the
re-drive sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from microshop import registry
from microshop.orders.handlers import SettledOrders, subscription
from microshop.orders.redrive import RedriveSweeper
from microshop.orders.settings import OrdersSettings
from microshop.orders.store import OrderStore
from microshop.platform.bus import Bus
from microshop.platform.outbox import OutboxRelay
from microshop.platform.runtime import consumers_running, open_bus, token_verifier
from microshop.platform.startup import opened_when_reachable
from microshop.platform.subscriptions import Subscription
from microshop.platform.telemetry import ServiceTelemetry
from microshop.platform.web import create_app as create_platform_app


@dataclass
class OrdersRuntime:
    """What the orders service opens at start-up: the document store, the bus and the relay."""

    store: OrderStore
    bus: Bus
    relay: OutboxRelay
    sweeper: RedriveSweeper

    @classmethod
    def open(cls, settings: OrdersSettings, telemetry: ServiceTelemetry) -> OrdersRuntime:
        store = OrderStore(
            settings.database_url,
            settings.database_name,
            telemetry.tracer,
            settings.mongo_client_options(),
            settings.redrive_after_seconds,
        )
        try:
            store.prepare()  # indexes and the catalog: the first thing that needs the server
        except Exception:
            store.close()
            raise
        bus = open_bus(settings, telemetry)
        relay = OutboxRelay(
            store.outbox, bus, settings.outbox_poll_seconds, "orders", settings.relay_backoff
        )
        store.outbox.on_commit = relay.kick
        sweeper = RedriveSweeper(
            store.redrives,
            telemetry.metrics.registry,
            settings.redrive_interval_seconds,
            settings.relay_backoff,
        )
        return cls(store, bus, relay, sweeper)

    def subscribe(self, subscription: Subscription[OrderStore]) -> None:
        self.bus.subscribe(
            subscription.queue,
            subscription.routing_keys,
            subscription.consumer(self.store),
            probe=self.store.ping,
        )

    def readiness(self) -> dict[str, Callable[[], None]]:
        return {
            "database": self.store.ping,
            "bus": self.bus.ping,
            "consumers": consumers_running(self.bus),
        }

    def close(self) -> None:
        self.sweeper.stop()
        self.relay.stop()
        self.bus.close()
        self.store.close()


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    service = registry.service("orders")
    verifier = token_verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        telemetry: ServiceTelemetry = app.state.telemetry

        async def serve(runtime: OrdersRuntime) -> None:
            telemetry.metrics.watch_outbox(runtime.store.outbox.backlog)
            await run_in_threadpool(runtime.subscribe, subscription(settled))
            runtime.relay.start()
            runtime.sweeper.start()
            app.state.runtime = runtime

        async with opened_when_reachable(
            "database",
            lambda: OrdersRuntime.open(settings, telemetry),
            serve,
            OrdersRuntime.close,
            settings.startup_backoff,
        ) as waiting:
            app.state.runtime = getattr(app.state, "runtime", waiting)
            yield

    app = create_platform_app(
        title="microshop orders",
        service=service.name,
        settings=settings,
        lifespan=lifespan,
        readiness=lambda app: app.state.runtime.readiness(),
    )
    settled = SettledOrders(app.state.telemetry.metrics.registry)
    app.state.token_verifier = verifier
    for router in service.routers():
        app.include_router(router)
    return app
