"""Pricing, idempotency fingerprints and the order state machine, as plain Python."""

from __future__ import annotations

import pytest

from microshop.orders.domain import (
    CATALOG,
    InvalidTransition,
    OrderStatus,
    RequestedItem,
    idempotency_id,
    next_status,
    price_order,
    request_fingerprint,
)
from microshop.platform.errors import Invalid

catalog = {p.sku: p for p in CATALOG}


def test_prices_come_from_the_catalog_in_integer_cents() -> None:
    priced = price_order([RequestedItem("MUG-CLASSIC", 3), RequestedItem("STICKERS-5", 1)], catalog)
    assert [(line.sku, line.unit_price_cents, line.line_total_cents) for line in priced.lines] == [
        ("MUG-CLASSIC", 1200, 3600),
        ("STICKERS-5", 450, 450),
    ]
    assert priced.total_cents == 4050
    assert priced.currency == "EUR"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one item"),
        ([RequestedItem("NOPE", 1)], "unknown sku 'NOPE'"),
        ([RequestedItem("MUG-CLASSIC", 0)], "between 1 and 100"),
        ([RequestedItem("MUG-CLASSIC", 101)], "between 1 and 100"),
        ([RequestedItem("MUG-CLASSIC", 1), RequestedItem("MUG-CLASSIC", 2)], "listed twice"),
    ],
)
def test_invalid_orders_are_refused_with_a_reason(items: list[RequestedItem], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        price_order(items, catalog)


def test_quantity_bounds_are_inclusive() -> None:
    assert price_order([RequestedItem("STICKERS-5", 1)], catalog).total_cents == 450
    assert price_order([RequestedItem("STICKERS-5", 100)], catalog).total_cents == 45000


def test_same_request_has_the_same_fingerprint_whatever_the_item_order() -> None:
    a = request_fingerprint([RequestedItem("A", 1), RequestedItem("B", 2)], "pm_card_visa")
    b = request_fingerprint([RequestedItem("B", 2), RequestedItem("A", 1)], "pm_card_visa")
    assert a == b
    assert a != request_fingerprint([RequestedItem("A", 2), RequestedItem("B", 2)], "pm_card_visa")
    assert a != request_fingerprint(
        [RequestedItem("A", 1), RequestedItem("B", 2)], "pm_card_mastercard"
    )


def test_idempotency_id_is_per_user_and_key() -> None:
    assert idempotency_id("u1", "k") == idempotency_id("u1", "k")
    assert idempotency_id("u1", "k") != idempotency_id("u2", "k")
    assert idempotency_id("u1", "k") != idempotency_id("u1", "k2")


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (OrderStatus.PENDING, "payment.succeeded", OrderStatus.PAID),
        (OrderStatus.PENDING, "payment.failed", OrderStatus.PAYMENT_FAILED),
    ],
)
def test_a_pending_order_settles_through_payment_events(
    current: OrderStatus, event: str, expected: OrderStatus
) -> None:
    assert next_status(current, event) is expected


@pytest.mark.parametrize(
    ("current", "event"),
    [
        (OrderStatus.PAID, "payment.failed"),
        (OrderStatus.PAID, "payment.succeeded"),
        (OrderStatus.PAYMENT_FAILED, "payment.succeeded"),
        (OrderStatus.PENDING, "order.created"),
    ],
)
def test_settled_orders_do_not_move_again(current: OrderStatus, event: str) -> None:
    with pytest.raises(InvalidTransition):
        next_status(current, event)
