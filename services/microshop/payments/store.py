"""Persistence of payments: the only code that reads and writes the payments database."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session, sessionmaker

from microshop.events import OrderCreated, PaymentFailed, PaymentSucceeded
from microshop.payments.domain import PaymentStatus, charge
from microshop.payments.models import Payment, PaymentsInbox
from microshop.platform import clock
from microshop.platform.outbox import SqlInbox, SqlOutbox, insert_once

log = logging.getLogger(__name__)
PAYMENTS = cast(Table, Payment.__table__)


class PaymentStore:
    def __init__(self, sessions: sessionmaker[Session], outbox: SqlOutbox, consumer: str) -> None:
        self.sessions, self.outbox = sessions, outbox
        self.inbox = SqlInbox(sessions, PaymentsInbox, consumer)

    def list_for_user(
        self, user_id: str, limit: int, offset: int, order_id: str | None = None
    ) -> tuple[list[Payment], int]:
        """One page of the caller's payments, newest first, and how many there are in all.

        The total comes with the rows (a window count in the same statement), so a payment
        recorded meanwhile cannot make the two disagree."""
        where = [Payment.user_id == user_id]
        if order_id is not None:
            where.append(Payment.order_id == order_id)
        page = (
            select(Payment, func.count().over())
            .where(*where)
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .offset(offset)
            .limit(limit)
        )
        with self.sessions() as session:
            rows = session.execute(page).all()
            if rows:
                return [payment for payment, _ in rows], int(rows[0][1])
            # Past the end (or nothing at all): the count alone.
            total = session.scalar(select(func.count()).select_from(Payment).where(*where))
            return [], int(total or 0)

    def charge_once(self, order: OrderCreated, headers: dict[str, str]) -> bool:
        """Charge the order and record its payment and outcome event in one transaction, once
        per event (the inbox) and once per order (the unique order id); False if it was not
        charged now."""
        return self.inbox.process_once(
            order.event_id, lambda session: self._charge(session, order, headers)
        )

    def _charge(self, session: Session, order: OrderCreated, headers: dict[str, str]) -> None:
        # The simulated provider's answer is a pure function of the order: the payment row
        # written below is the charge itself, and there is at most one per order.
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
            created_at=clock.now(),
        )
        # One statement for the common case (a new order); the unique order id keeps it to one
        # payment per order whatever the bus delivers. Core, not a unit-of-work flush: once per
        # event on the consumer's hot path.
        row = {c.key: getattr(payment, c.key) for c in PAYMENTS.columns}
        if insert_once(session.connection(), PAYMENTS, row, "order_id"):
            self.outbox.add(session, outcome_event(payment, order.placed_at), headers=dict(headers))
        else:
            # The order was driven again (orders' sweeper saw it wait too long, or a PAID order
            # with no notification): its outcome may never have arrived, so it goes out once
            # more, under a new event id. Orders and notifications apply it at most once.
            existing = session.scalars(
                select(Payment).where(Payment.order_id == order.order_id)
            ).one()
            log.info(
                "order already charged: outcome sent again", extra={"order_id": order.order_id}
            )
            again = outcome_event(existing, order.placed_at)
            self.outbox.add(session, again, headers=dict(headers))
            return
        log.info(
            "payment %s",
            payment.status.lower(),
            extra={"order_id": payment.order_id, "payment_id": payment.id},
        )


def outcome_event(
    payment: Payment, placed_at: datetime | None = None
) -> PaymentSucceeded | PaymentFailed:
    """The event announcing a payment's outcome, with when its order was placed (as the
    order.created said) for orders' placed → settled histogram."""
    common: dict[str, Any] = {
        "placed_at": placed_at,
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "user_id": payment.user_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
    }
    if payment.status == PaymentStatus.SUCCEEDED.value:
        return PaymentSucceeded(**common)
    return PaymentFailed(**common, failure_code=payment.failure_code or "declined")
