"""What a SQL-backed service opens at start-up and closes at shutdown: database, bus, relay."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from microshop.platform import db
from microshop.platform.auth import TokenVerifier
from microshop.platform.bus import Bus, RetryPolicy, connect_bus
from microshop.platform.outbox import OutboxMixin, OutboxRelay, SqlOutbox
from microshop.platform.settings import DatabaseSettings, ServiceSettings
from microshop.platform.startup import opened_when_reachable
from microshop.platform.subscriptions import Subscription
from microshop.platform.telemetry import ServiceTelemetry, trace_engine
from microshop.platform.web import NotReady
from microshop.platform.web import create_app as create_platform_app
from microshop.registry import Service

log = logging.getLogger(__name__)


def token_verifier(settings: ServiceSettings) -> TokenVerifier:
    if not settings.jwt_public_key:
        raise RuntimeError(
            "MICROSHOP_JWT_PUBLIC_KEY is not set: every service verifies access tokens itself"
        )
    return TokenVerifier(settings.jwt_public_key, settings.token_leeway_seconds)


def consumers_running(bus: Bus) -> Callable[[], None]:
    """A readiness check that fails, naming the queue and why, while a consumer is paused."""

    def check() -> None:
        paused = bus.paused()
        if paused:
            raise NotReady(
                "paused: " + ", ".join(f"{queue} ({reason})" for queue, reason in paused.items())
            )

    return check


def open_bus(settings: DatabaseSettings, telemetry: ServiceTelemetry | None = None) -> Bus:
    return connect_bus(
        settings.bus_url,
        RetryPolicy(
            max_attempts=settings.consumer_max_attempts,
            base_delay_seconds=settings.consumer_retry_base_seconds,
        ),
        telemetry,
        reconnect=settings.bus_reconnect_backoff,
        consumers=settings.consumers(),
    )


@dataclass
class SqlRuntime:
    """What a SQL service opened: its engine and sessions, the bus, the outbox and its relay,
    and the service's store over them (what routes and handlers call)."""

    engine: Engine
    sessions: sessionmaker[Session]
    bus: Bus | None = None
    outbox: SqlOutbox | None = None
    relay: OutboxRelay | None = None
    store: Any = None

    @classmethod
    def open(
        cls,
        settings: DatabaseSettings,
        migrations_dir: Path,
        outbox_model: type[OutboxMixin] | None = None,
        name: str = "service",
        *,
        uses_bus: bool = True,
        telemetry: ServiceTelemetry | None = None,
        store: Callable[[SqlRuntime], Any] | None = None,
    ) -> SqlRuntime:
        engine = db.make_engine(settings.database_url)
        try:
            db.migrate(engine, migrations_dir)
        except Exception:
            engine.dispose()
            raise
        if telemetry is not None and telemetry.tracer is not None:
            trace_engine(engine, telemetry.tracer)
        sessions = db.make_session_factory(engine)
        bus = open_bus(settings, telemetry) if uses_bus else None
        runtime = cls(engine=engine, sessions=sessions, bus=bus)
        if outbox_model is not None:
            assert bus is not None, "an outbox needs a bus to relay to"
            runtime.outbox = SqlOutbox(sessions, outbox_model)
            runtime.relay = OutboxRelay(
                runtime.outbox, bus, settings.outbox_poll_seconds, name, settings.relay_backoff
            )
            runtime.outbox.on_commit = runtime.relay.kick
            runtime.relay.start()
            if telemetry is not None:
                telemetry.metrics.watch_outbox(runtime.outbox.backlog)
        if store is not None:
            runtime.store = store(runtime)
        return runtime

    def subscribe(self, subscription: Subscription[Any]) -> None:
        """Bind the subscription's queue and consume it with handlers made from the store."""
        assert self.bus is not None, "this service was opened without a bus"
        self.bus.subscribe(
            subscription.queue,
            subscription.routing_keys,
            subscription.consumer(self.store),
            probe=self.ping_database,
        )

    def ping_database(self) -> None:
        db.ping(self.engine)

    def readiness(self) -> dict[str, Callable[[], None]]:
        checks: dict[str, Callable[[], None]] = {"database": self.ping_database}
        if self.bus is not None:
            checks["bus"] = self.bus.ping
            checks["consumers"] = consumers_running(self.bus)
        return checks

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        if self.bus is not None:
            self.bus.close()
        self.engine.dispose()


def create_sql_service_app(
    *,
    service: Service,
    settings: DatabaseSettings,
    store: Callable[[SqlRuntime], Any],
    outbox_model: type[OutboxMixin] | None = None,
    subscriptions: Sequence[Subscription[Any]] = (),
) -> FastAPI:
    """The app of a service on its own SQL database, serving its routes: its lifespan opens the
    runtime (database, its migrations, the bus if the registry says it uses one, relay), starts
    its consumers, and closes everything at shutdown."""
    verifier = token_verifier(settings)
    name = service.name

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def serve(runtime: SqlRuntime) -> None:
            for subscription in subscriptions:
                await run_in_threadpool(runtime.subscribe, subscription)
            app.state.runtime = runtime

        opener = functools.partial(
            SqlRuntime.open,
            settings,
            service.migrations,
            outbox_model,
            name,
            uses_bus=service.bus,
            telemetry=app.state.telemetry,
            store=store,
        )
        async with opened_when_reachable(
            "database", opener, serve, SqlRuntime.close, settings.startup_backoff
        ) as waiting:
            app.state.runtime = getattr(app.state, "runtime", waiting)
            yield

    app = create_platform_app(
        title=f"microshop {name}",
        service=name,
        settings=settings,
        lifespan=lifespan,
        readiness=lambda app: app.state.runtime.readiness(),
    )
    app.state.token_verifier = verifier
    for router in service.routers():
        app.include_router(router)
    return app
