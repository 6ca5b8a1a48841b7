"""Tables of the notifications database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microshop.platform.db import UtcDateTime
from microshop.platform.outbox import InboxMixin, OutboxMixin


class NotificationsBase(DeclarativeBase):
    pass


class Notification(NotificationsBase):
    __tablename__ = "notifications"
    __table_args__ = (
        # One notification of a kind per order, enforced by the database: the inbox dedupes by
        # event_id, this also stops a second event about the same order.
        UniqueConstraint("order_id", "type", name="uq_notifications_order_id_type"),
        Index("ix_notifications_user_id_created_at", "user_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    order_id: Mapped[str] = mapped_column(String(36))
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # When its owner marked it read; None while it is unread (it counts in the unread badge).
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class NotificationsInbox(InboxMixin, NotificationsBase):
    pass


class NotificationsOutbox(OutboxMixin, NotificationsBase):
    """notification.sent events, written with the notification they announce."""
