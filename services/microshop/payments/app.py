"""The payments service's ASGI app: database, outbox relay and the order.created consumer."""

from __future__ import annotations

from fastapi import FastAPI

from microshop import registry
from microshop.payments.handlers import QUEUE, SUBSCRIPTION
from microshop.payments.models import PaymentsOutbox
from microshop.payments.settings import PaymentsSettings
from microshop.payments.store import PaymentStore
from microshop.platform.runtime import SqlRuntime, create_sql_service_app


def open_store(runtime: SqlRuntime) -> PaymentStore:
    assert runtime.outbox is not None
    return PaymentStore(runtime.sessions, runtime.outbox, consumer=QUEUE)


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    return create_sql_service_app(
        service=registry.service("payments"),
        settings=settings or PaymentsSettings(),
        store=open_store,
        outbox_model=PaymentsOutbox,
        subscriptions=[SUBSCRIPTION],
    )
