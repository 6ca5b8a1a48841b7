"""Persistence of notifications: the only code that reads and writes the notifications database."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from microshop.events import NotificationSent, PaymentSucceeded
from microshop.notifications.domain import NotificationType, order_paid_message
from microshop.notifications.models import Notification, NotificationsInbox
from microshop.platform.errors import NotFound
from microshop.platform.outbox import SqlInbox, SqlOutbox, insert_once

log = logging.getLogger(__name__)
NOTIFICATIONS = cast(Table, Notification.__table__)


class NotificationStore:
    def __init__(self, sessions: sessionmaker[Session], outbox: SqlOutbox, consumer: str) -> None:
        self.sessions, self.outbox = sessions, outbox
        self.inbox = SqlInbox(sessions, NotificationsInbox, consumer)

    def list_for_user(
        self, user_id: str, limit: int, offset: int, *, unread_only: bool = False
    ) -> tuple[list[Notification], int]:
        """A page of the user's notifications, newest first, and how many match in all."""
        mine = Notification.user_id == user_id
        where = (mine, Notification.read_at.is_(None)) if unread_only else (mine,)
        query = (
            select(Notification)
            .where(*where)
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(Notification).where(*where))
            return list(session.scalars(query)), total or 0

    def mark_read(self, user_id: str, notification_id: str, at: datetime) -> Notification:
        """Mark one of the user's notifications read at `at`; marking it again keeps the first
        time. Another user's notification is as missing as one that does not exist."""
        with self.sessions.begin() as session:
            # One conditional UPDATE: two tabs marking at once both see the first read_at.
            session.execute(
                update(Notification)
                .where(
                    Notification.id == notification_id,
                    Notification.user_id == user_id,
                    Notification.read_at.is_(None),
                )
                .values(read_at=at)
            )
            found = session.scalar(
                select(Notification).where(
                    Notification.id == notification_id, Notification.user_id == user_id
                )
            )
            if found is None:
                raise NotFound(f"notification {notification_id} not found")
            session.expunge(found)
            return found

    def notify_paid_once(self, payment: PaymentSucceeded) -> bool:
        """Record the order_paid notification of the payment's order, once per event (the
        inbox) and once per order (the unique order and type); False if nothing was done."""
        return self.inbox.process_once(
            payment.event_id, lambda session: self._notify_paid(session, payment)
        )

    def _notify_paid(self, session: Session, payment: PaymentSucceeded) -> None:
        kind = NotificationType.ORDER_PAID.value
        notification_id = str(uuid.uuid4())
        # One statement for the common case; the unique (order, type) keeps it to one
        # notification of a kind per order. Core, not a unit-of-work flush: once per event on
        # the consumer's hot path.
        created = insert_once(
            session.connection(),
            NOTIFICATIONS,
            {
                "id": notification_id,
                "user_id": payment.user_id,
                "order_id": payment.order_id,
                "type": kind,
                "message": order_paid_message(
                    payment.order_id, payment.amount_cents, payment.currency
                ),
                "created_at": datetime.now(UTC),
                "read_at": None,
            },
            "order_id",
            "type",
        )
        if not created:
            # Another event about the same order (a re-sent payment outcome) got here first. A
            # re-sent outcome means orders has not heard of the notification (its sweeper drove
            # the order again): tell it once more.
            existing = session.scalars(
                select(Notification.id).where(
                    Notification.order_id == payment.order_id, Notification.type == kind
                )
            ).one()
            log.info("order already notified", extra={"order_id": payment.order_id})
            self._announce(session, existing, payment)
            return
        self._announce(session, notification_id, payment)
        log.info("order paid notification", extra={"order_id": payment.order_id})

    def _announce(self, session: Session, notification_id: str, payment: PaymentSucceeded) -> None:
        sent = NotificationSent(
            notification_id=notification_id, order_id=payment.order_id, user_id=payment.user_id
        )
        self.outbox.add(session, sent)
