"""What a notification says: money in integer cents, shown with two decimals."""

from __future__ import annotations

import pytest

from microshop.notifications.domain import format_money, order_paid_message


@pytest.mark.parametrize(
    ("cents", "shown"),
    [(1234, "12.34 EUR"), (5, "0.05 EUR"), (100, "1.00 EUR"), (0, "0.00 EUR"), (-250, "-2.50 EUR")],
)
def test_money_is_shown_from_integer_cents(cents: int, shown: str) -> None:
    assert format_money(cents, "EUR") == shown


def test_order_paid_message_names_the_order_and_amount() -> None:
    assert order_paid_message("o-1", 1234, "USD") == "Your order o-1 is paid: 12.34 USD"
