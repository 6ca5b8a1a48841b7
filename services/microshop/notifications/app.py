"""The notifications service's ASGI app: its database, the payment.succeeded consumer, and the
outbox relay of its notification.sent events."""

from __future__ import annotations

from fastapi import FastAPI

from microshop import registry
from microshop.notifications.handlers import QUEUE, SUBSCRIPTION
from microshop.notifications.models import NotificationsOutbox
from microshop.notifications.settings import NotificationsSettings
from microshop.notifications.store import NotificationStore
from microshop.platform.runtime import SqlRuntime, create_sql_service_app


def open_store(runtime: SqlRuntime) -> NotificationStore:
    assert runtime.outbox is not None
    return NotificationStore(runtime.sessions, runtime.outbox, consumer=QUEUE)


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    # Its outbox carries notification.sent, which orders records (for its re-drive sweeper).
    return create_sql_service_app(
        service=registry.service("notifications"),
        settings=settings or NotificationsSettings(),
        store=open_store,
        outbox_model=NotificationsOutbox,
        subscriptions=[SUBSCRIPTION],
    )
