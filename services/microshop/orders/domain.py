"""Order rules in plain Python: the catalog, pricing, idempotency and the order state machine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from microshop.platform.errors import Invalid

MIN_QUANTITY, MAX_QUANTITY = 1, 100
MAX_LINES = 50


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price_cents: int
    currency: str


# The seeded catalog. Prices are integer cents; one currency per shop.
CATALOG: tuple[Product, ...] = (
    Product("MUG-CLASSIC", "Classic mug", 1200, "EUR"),
    Product("TEE-LOGO-M", "Logo T-shirt (M)", 2500, "EUR"),
    Product("TEE-LOGO-L", "Logo T-shirt (L)", 2500, "EUR"),
    Product("HOODIE-GREY", "Grey hoodie", 5900, "EUR"),
    Product("STICKERS-5", "Sticker pack (5)", 450, "EUR"),
    Product("NOTEBOOK-A5", "A5 notebook", 899, "EUR"),
)


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    PAYMENT_FAILED = "PAYMENT_FAILED"


@dataclass(frozen=True)
class RequestedItem:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int


@dataclass(frozen=True)
class PricedOrder:
    lines: tuple[PricedLine, ...]
    total_cents: int
    currency: str


def price_order(items: Iterable[RequestedItem], catalog: Mapping[str, Product]) -> PricedOrder:
    """Price the items from the catalog; the client never sets a price."""
    items = list(items)
    if not items:
        raise Invalid("an order needs at least one item")
    if len(items) > MAX_LINES:
        raise Invalid(f"an order has at most {MAX_LINES} lines")
    seen: set[str] = set()
    lines = []
    currencies = set()
    for item in items:
        if item.sku in seen:
            raise Invalid(f"sku {item.sku!r} is listed twice; give one line with its quantity")
        seen.add(item.sku)
        if not MIN_QUANTITY <= item.quantity <= MAX_QUANTITY:
            raise Invalid(
                f"quantity of {item.sku!r} must be between {MIN_QUANTITY} and {MAX_QUANTITY}"
            )
        product = catalog.get(item.sku)
        if product is None:
            raise Invalid(f"unknown sku {item.sku!r}")
        currencies.add(product.currency)
        lines.append(
            PricedLine(
                sku=product.sku,
                name=product.name,
                quantity=item.quantity,
                unit_price_cents=product.price_cents,
                line_total_cents=product.price_cents * item.quantity,
            )
        )
    if len(currencies) != 1:
        raise Invalid("all items of an order must share one currency")
    return PricedOrder(tuple(lines), sum(line.line_total_cents for line in lines), currencies.pop())


def request_fingerprint(items: Iterable[RequestedItem], payment_method: str) -> str:
    """What makes two requests under one Idempotency-Key 'the same request'."""
    canonical = json.dumps(
        {
            "items": sorted([item.sku, item.quantity] for item in items),
            "payment_method": payment_method,
        },
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_id(user_id: str, key: str) -> str:
    """The identity of (user, Idempotency-Key): the order document's _id, unique in any store."""
    return hashlib.sha256(f"{user_id}\x00{key}".encode()).hexdigest()


class InvalidTransition(Exception):
    pass


_TRANSITIONS: dict[tuple[OrderStatus, str], OrderStatus] = {
    (OrderStatus.PENDING, "payment.succeeded"): OrderStatus.PAID,
    (OrderStatus.PENDING, "payment.failed"): OrderStatus.PAYMENT_FAILED,
}


def next_status(current: OrderStatus, event_type: str) -> OrderStatus:
    """An order leaves PENDING only through a payment event, and only once."""
    try:
        return _TRANSITIONS[(current, event_type)]
    except KeyError:
        raise InvalidTransition(f"{event_type} does not apply to an order {current}") from None
