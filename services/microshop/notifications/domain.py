"""Notification rules: which kinds there are and what each one says."""

from __future__ import annotations

from enum import StrEnum


class NotificationType(StrEnum):
    ORDER_PAID = "order_paid"


def format_money(amount_cents: int, currency: str) -> str:
    """`1234, "EUR"` → `12.34 EUR`: integer arithmetic, no float rounding."""
    sign = "-" if amount_cents < 0 else ""
    units, cents = divmod(abs(amount_cents), 100)
    return f"{sign}{units}.{cents:02d} {currency}"


def order_paid_message(order_id: str, amount_cents: int, currency: str) -> str:
    return f"Your order {order_id} is paid: {format_money(amount_cents, currency)}"
