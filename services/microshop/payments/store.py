"""Persistence of payments: the only code that reads and writes the payments database."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded
from microshop.payments.domain import PaymentStatus, charge
from microshop.payments.models import Payment, PaymentsInbox
from microshop.platform.outbox import SqlInbox, SqlOutbox

log = logging.getLogger(__name__)

# The newest payments a caller is shown.
LIST_LIMIT = 100


class PaymentStore:
    def __init__(self, sessions: sessionmaker[Session], outbox: SqlOutbox, consumer: str) -> None:
        self.sessions, self.outbox = sessions, outbox
        self.inbox = SqlInbox(sessions, PaymentsInbox, consumer)

    def list_for_user(self, user_id: str, order_id: str | None = None) -> list[Payment]:
        query = select(Payment).where(Payment.user_id == user_id)
        if order_id is not None:
            query = query.where(Payment.order_id == order_id)
        with self.sessions() as session:
            return list(
                session.scalars(query.order_by(Payment.created_at.desc()).limit(LIST_LIMIT))
            )

    def charge_once(self, order: OrderCreated, headers: dict[str, str]) -> bool:
        """Charge the order and record its payment and outcome event in one transaction, once
        per event (the inbox) and once per order (the unique order id); False if it was not
        charged now."""
        return self.inbox.process_once(
            order.event_id, lambda session: self._charge(session, order, headers)
        )

    def _charge(self, session: Session, order: OrderCreated, headers: dict[str, str]) -> None:
        existing = session.scalar(select(Payment).where(Payment.order_id == order.order_id))
        if existing is not None:
            log.info("order already charged", extra={"order_id": order.order_id})
            return
        outcome = charge(order.payment_method, order.total_cents)
        payment = Payment(
            id=str(uuid.uuid4()),
            order_id=order.order_id,
            user_id=order.user_id,
            amount_cents=order.total_cents,
            currency=order.currency,
            payment_method=order.payment_method,
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
        self.outbox.add(session, result, headers=dict(headers))
        log.info(
            "payment %s",
            payment.status.lower(),
            extra={"order_id": payment.order_id, "payment_id": payment.id},
        )
