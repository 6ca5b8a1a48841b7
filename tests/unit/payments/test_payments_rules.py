"""The simulated provider to the letter: what each payment method and amount is answered."""

from __future__ import annotations

import pytest

from microshop.payments.domain import Outcome, PaymentStatus, charge


@pytest.mark.parametrize(
    ("method", "amount", "outcome"),
    [
        ("pm_card_visa", 1, Outcome(PaymentStatus.SUCCEEDED, None)),
        ("pm_card_mastercard", 1, Outcome(PaymentStatus.SUCCEEDED, None)),
        ("pm_card_chargeDeclined", 1, Outcome(PaymentStatus.FAILED, "card_declined")),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            1,
            Outcome(PaymentStatus.FAILED, "insufficient_funds"),
        ),
        ("pm_card_unknown", 1, Outcome(PaymentStatus.FAILED, "payment_method_unsupported")),
        ("pm_card_visa", 0, Outcome(PaymentStatus.FAILED, "invalid_amount")),
        ("pm_card_visa", -1, Outcome(PaymentStatus.FAILED, "invalid_amount")),
    ],
)
def test_the_provider_answers(method: str, amount: int, outcome: Outcome) -> None:
    assert charge(method, amount) == outcome


def test_statuses_are_stored_by_these_names() -> None:
    assert [s.value for s in PaymentStatus] == ["SUCCEEDED", "FAILED"]
