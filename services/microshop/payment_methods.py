"""The payment methods an order may name: part of the contract between orders and payments.

They follow the payment providers' well-known test-mode names. Orders refuses any other name
at the door; payments decides what each one does (payments/domain.py).
"""

from __future__ import annotations

from typing import Final

VISA: Final = "pm_card_visa"
MASTERCARD: Final = "pm_card_mastercard"
DECLINED: Final = "pm_card_chargeDeclined"
INSUFFICIENT_FUNDS: Final = "pm_card_chargeDeclinedInsufficientFunds"

PAYMENT_METHODS: Final = frozenset({VISA, MASTERCARD, DECLINED, INSUFFICIENT_FUNDS})
