"""Payment rules: the simulated provider, following the well-known test payment method names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PaymentStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Outcome:
    status: PaymentStatus
    failure_code: str | None = None


# Test payment methods, as in the payment providers' well-known test mode convention.
TEST_PAYMENT_METHODS: dict[str, Outcome] = {
    "pm_card_visa": Outcome(PaymentStatus.SUCCEEDED),
    "pm_card_mastercard": Outcome(PaymentStatus.SUCCEEDED),
    "pm_card_chargeDeclined": Outcome(PaymentStatus.FAILED, "card_declined"),
    "pm_card_chargeDeclinedInsufficientFunds": Outcome(PaymentStatus.FAILED, "insufficient_funds"),
}

SUPPORTED_PAYMENT_METHODS = frozenset(TEST_PAYMENT_METHODS)


def charge(payment_method: str, amount_cents: int) -> Outcome:
    """What the simulated provider answers; an unknown method is declined, never charged."""
    if amount_cents <= 0:
        return Outcome(PaymentStatus.FAILED, "invalid_amount")
    return TEST_PAYMENT_METHODS.get(
        payment_method, Outcome(PaymentStatus.FAILED, "payment_method_unsupported")
    )
