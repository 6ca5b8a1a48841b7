"""Notification rules to the letter: the stored kind, and small negative amounts."""

from __future__ import annotations

from microshop.notifications.domain import NotificationType, format_money


def test_the_kind_is_stored_and_shown_as_order_paid() -> None:
    assert [kind.value for kind in NotificationType] == ["order_paid"]


def test_a_small_negative_amount_keeps_its_sign() -> None:
    assert format_money(-5, "EUR") == "-0.05 EUR"
    assert format_money(-100, "EUR") == "-1.00 EUR"
