"""Tables of the payments database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from microshop.platform.db import UtcDateTime
from microshop.platform.outbox import InboxMixin, OutboxMixin


class PaymentsBase(DeclarativeBase):
    pass


class Payment(PaymentsBase):
    __tablename__ = "payments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # At most one payment per order, enforced by the database, whatever the bus delivers.
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payment_method: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PaymentsOutbox(OutboxMixin, PaymentsBase):
    pass


class PaymentsInbox(InboxMixin, PaymentsBase):
    pass
