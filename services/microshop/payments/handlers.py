"""Event handlers of the payments service: an order was created, so charge it."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded
from microshop.payments.domain import PaymentStatus, charge
from microshop.payments.models import Payment, PaymentsInbox
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import SqlInbox, decode
from microshop.platform.runtime import SqlRuntime

log = logging.getLogger(__name__)

QUEUE = "payments.order-events"
ROUTING_KEYS = ("order.created",)


class OrderCreatedHandler:
    """Charges the order once, records the payment and its outcome event in one transaction."""

    def __init__(self, runtime: SqlRuntime) -> None:
        assert runtime.outbox is not None
        self.runtime = runtime
        self.inbox = SqlInbox(runtime.sessions, PaymentsInbox, QUEUE)

    def __call__(self, message: IncomingMessage) -> None:
        event = decode(message)
        if not isinstance(event, OrderCreated):
            return
        charged = self.inbox.process_once(
            event.event_id, lambda session: self._charge(session, event, message.headers)
        )
        if charged and self.runtime.relay is not None:
            self.runtime.relay.kick()

    def _charge(self, session: Session, event: OrderCreated, headers: dict[str, str]) -> None:
        existing = session.scalar(select(Payment).where(Payment.order_id == event.order_id))
        if existing is not None:
            log.info("order already charged", extra={"order_id": event.order_id})
            return
        outcome = charge(event.payment_method, event.total_cents)
        payment = Payment(
            id=str(uuid.uuid4()),
            order_id=event.order_id,
            user_id=event.user_id,
            amount_cents=event.total_cents,
            currency=event.currency,
            payment_method=event.payment_method,
            status=outcome.status.value,
            failure_code=outcome.failure_code,
            created_at=datetime.now(UTC),
        )
        session.add(payment)
        common: dict[str, Any] = {
            "payment_id": payment.id,
            "order_id": payment.order_id,
            "user_id": payment.user_id,
            "amount_cents": payment.amount_cents,
            "currency": payment.currency,
        }
        result: PaymentSucceeded | PaymentFailed
        if outcome.status is PaymentStatus.SUCCEEDED:
            result = PaymentSucceeded(**common)
        else:
            result = PaymentFailed(**common, failure_code=outcome.failure_code or "declined")
        assert self.runtime.outbox is not None
        self.runtime.outbox.add(session, result, headers=dict(headers))
        log.info(
            "payment %s",
            payment.status.lower(),
            extra={"order_id": payment.order_id, "payment_id": payment.id},
        )
