"""Order rules to the letter: the reasons a caller is given, the limits at their edges, and the
persisted forms (fingerprint, idempotency id) that a stored order is matched by."""

from __future__ import annotations

import hashlib
import json

import pytest

from microshop.orders.domain import (
    CATALOG,
    MAX_LINES,
    MAX_QUANTITY,
    MIN_QUANTITY,
    InvalidTransition,
    OrderStatus,
    PricedLine,
    Product,
    RequestedItem,
    idempotency_id,
    next_status,
    price_order,
    request_fingerprint,
)
from microshop.platform.errors import Invalid

catalog = {p.sku: p for p in CATALOG}


@pytest.mark.parametrize(
    ("items", "detail"),
    [
        ([], "an order needs at least one item"),
        ([RequestedItem("NOPE", 1)], "unknown sku 'NOPE'"),
        ([RequestedItem("MUG-CLASSIC", 0)], "quantity of 'MUG-CLASSIC' must be between 1 and 100"),
        (
            [RequestedItem("MUG-CLASSIC", 1), RequestedItem("MUG-CLASSIC", 2)],
            "sku 'MUG-CLASSIC' is listed twice; give one line with its quantity",
        ),
        ([RequestedItem(f"SKU-{n}", 1) for n in range(51)], "an order has at most 50 lines"),
    ],
)
def test_the_reason_a_caller_is_given(items: list[RequestedItem], detail: str) -> None:
    with pytest.raises(Invalid) as refused:
        price_order(items, catalog)

    assert refused.value.detail == detail


def test_limits_are_the_documented_ones() -> None:
    assert (MIN_QUANTITY, MAX_QUANTITY, MAX_LINES) == (1, 100, 50)


def test_fifty_lines_pass_the_line_limit() -> None:
    # Fifty unknown skus get past the line count, to the first unknown sku.
    with pytest.raises(Invalid, match="unknown sku 'SKU-0'"):
        price_order([RequestedItem(f"SKU-{n}", 1) for n in range(50)], catalog)


def test_a_priced_line_carries_name_quantity_and_both_prices() -> None:
    priced = price_order([RequestedItem("HOODIE-GREY", 2)], catalog)

    assert priced.lines == (PricedLine("HOODIE-GREY", "Grey hoodie", 2, 5900, 11800),)
    assert (priced.total_cents, priced.currency) == (11800, "EUR")


def test_items_of_two_currencies_are_refused() -> None:
    mixed = {
        "A": Product("A", "a", 100, "EUR"),
        "B": Product("B", "b", 100, "USD"),
    }

    with pytest.raises(Invalid) as refused:
        price_order([RequestedItem("A", 1), RequestedItem("B", 1)], mixed)

    assert refused.value.detail == "all items of an order must share one currency"


def test_the_fingerprint_is_the_sha256_of_the_canonical_request() -> None:
    # Stored with every order: a changed form would make every replay a 409.
    canonical = '{"items":[["A",1],["B",2]],"payment_method":"pm_card_visa"}'

    fingerprint = request_fingerprint(
        [RequestedItem("B", 2), RequestedItem("A", 1)], "pm_card_visa"
    )

    assert fingerprint == hashlib.sha256(canonical.encode()).hexdigest()
    assert json.loads(canonical)  # the canonical form is JSON


def test_the_idempotency_id_is_the_sha256_of_user_and_key_apart() -> None:
    # The order document's _id: a changed form would let a replay place a second order.
    assert idempotency_id("u1", "k2") == hashlib.sha256(b"u1\x00k2").hexdigest()
    assert idempotency_id("u1", "k2") != idempotency_id("u1k", "2")


def test_a_transition_that_does_not_apply_says_which() -> None:
    with pytest.raises(InvalidTransition) as refused:
        next_status(OrderStatus.PAID, "payment.failed")

    assert str(refused.value) == "payment.failed does not apply to an order PAID"
