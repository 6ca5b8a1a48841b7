"""Payment rules: the simulated provider, following the well-known test payment method names."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from microshop import payment_methods


class PaymentStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Outcome:
    status: PaymentStatus
    failure_code: str | None = None


# What each payment method of the contract does, as in the providers' test mode.
TEST_PAYMENT_METHODS: dict[str, Outcome] = {
    payment_methods.VISA: Outcome(PaymentStatus.SUCCEEDED),
    payment_methods.MASTERCARD: Outcome(PaymentStatus.SUCCEEDED),
    payment_methods.DECLINED: Outcome(PaymentStatus.FAILED, "card_declined"),
    payment_methods.INSUFFICIENT_FUNDS: Outcome(PaymentStatus.FAILED, "insufficient_funds"),
}


def charge(payment_method: str, amount_cents: int) -> Outcome:
    """What the simulated provider answers; an unknown method is declined, never charged."""
    if amount_cents <= 0:
        return Outcome(PaymentStatus.FAILED, "invalid_amount")
    return TEST_PAYMENT_METHODS.get(
        payment_method, Outcome(PaymentStatus.FAILED, "payment_method_unsupported")
    )
