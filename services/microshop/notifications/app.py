"""The notifications service's ASGI app: its database and the payment.succeeded consumer."""

from __future__ import annotations

from fastapi import FastAPI

from microshop import registry
from microshop.notifications.handlers import QUEUE, SUBSCRIPTION
from microshop.notifications.settings import NotificationsSettings
from microshop.notifications.store import NotificationStore
from microshop.platform.runtime import SqlRuntime, create_sql_service_app


def open_store(runtime: SqlRuntime) -> NotificationStore:
    return NotificationStore(runtime.sessions, consumer=QUEUE)


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    # No outbox: this service publishes nothing; it only consumes.
    return create_sql_service_app(
        service=registry.service("notifications"),
        settings=settings or NotificationsSettings(),
        store=open_store,
        subscriptions=[SUBSCRIPTION],
    )
