"""Event handlers of the notifications service: a payment succeeded, so tell the buyer."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from microshop.events import PaymentSucceeded
from microshop.notifications.domain import NotificationType, order_paid_message
from microshop.notifications.models import Notification, NotificationsInbox
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import SqlInbox, decode
from microshop.platform.runtime import SqlRuntime

log = logging.getLogger(__name__)

QUEUE = "notifications.payment-events"
# payment.failed is deliberately not bound: a failed payment notifies no one.
ROUTING_KEYS = ("payment.succeeded",)


class PaymentSucceededHandler:
    """Records one order_paid notification per order, however often its event arrives."""

    def __init__(self, runtime: SqlRuntime) -> None:
        self.inbox = SqlInbox(runtime.sessions, NotificationsInbox, QUEUE)

    def __call__(self, message: IncomingMessage) -> None:
        event = decode(message)
        if not isinstance(event, PaymentSucceeded):
            return
        self.inbox.process_once(event.event_id, lambda session: self._notify(session, event))

    def _notify(self, session: Session, event: PaymentSucceeded) -> None:
        kind = NotificationType.ORDER_PAID.value
        existing = session.scalar(
            select(Notification.id).where(
                Notification.order_id == event.order_id, Notification.type == kind
            )
        )
        if existing is not None:
            # Another event about the same order (a re-sent payment outcome) got here first.
            # Two such events racing: the unique constraint fails one, the bus retries it,
            # and the retry lands here.
            log.info("order already notified", extra={"order_id": event.order_id})
            return
        session.add(
            Notification(
                id=str(uuid.uuid4()),
                user_id=event.user_id,
                order_id=event.order_id,
                type=kind,
                message=order_paid_message(event.order_id, event.amount_cents, event.currency),
                created_at=datetime.now(UTC),
            )
        )
        log.info("order paid notification", extra={"order_id": event.order_id})
