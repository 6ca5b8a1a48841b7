"""Public routes of the orders service: the catalog and the caller's orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
)

from microshop.orders.domain import (
    CATALOG,
    MAX_LINES,
    MAX_QUANTITY,
    MIN_QUANTITY,
    RequestedItem,
    idempotency_id,
    price_order,
    request_fingerprint,
)
from microshop.orders.store import OrderStore
from microshop.payment_methods import PAYMENT_METHODS
from microshop.platform.clock import as_utc
from microshop.platform.deps import CurrentPrincipal, Store
from microshop.platform.errors import NotFound
from microshop.platform.pages import MAX_LIMIT, Limit, Offset, Page
from microshop.platform.text import UUID_PATTERN
from microshop.platform.tracing import current_trace_headers

router = APIRouter(prefix="/api/v1", tags=["orders"])


# Trimmed like any field value (RFC 9110 §5.5: surrounding whitespace is not part of a field
# value), so "k" and "k " are one key and one order; visible ASCII, spaces only inside.
IdempotencyKey = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=255,
        pattern=r"^[!-~](?:[ -~]*[!-~])?$",
    ),
    Header(
        description="Chosen by the caller, one per order: a repeat answers the first result",
        examples=["checkout-2f6c1a9e"],
    ),
]


class ProductOut(BaseModel):
    sku: str
    name: str
    price_cents: int
    currency: str


# What the schema lists (JSON values, as pydantic's json_schema_extra types them).
def _whole_number(value: object) -> object:
    """A JSON number with no fraction (2, 2.0: JSON Schema's `integer`); "2" and true are not
    quantities (pydantic's lax int would take both)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("Input should be a whole number")
        return int(value)
    return value


SKUS: list[JsonValue] = [product.sku for product in sorted(CATALOG, key=lambda p: p.sku)]
METHODS: list[JsonValue] = [*sorted(PAYMENT_METHODS)]


class ItemIn(BaseModel):
    sku: str = Field(
        min_length=1,
        max_length=64,
        description="A product of the catalog (GET /api/v1/products)",
        json_schema_extra={"enum": SKUS},
    )
    quantity: Annotated[int, BeforeValidator(_whole_number)] = Field(
        ge=MIN_QUANTITY, le=MAX_QUANTITY
    )

    model_config = ConfigDict(extra="forbid")


class OrderIn(BaseModel):
    # A product has one line (the domain refuses a second): so at most one line per SKU of
    # the catalog, which the schema says with one `maxContains` per SKU (JSON Schema 2020-12).
    items: list[ItemIn] = Field(
        min_length=1,
        max_length=MAX_LINES,
        json_schema_extra={
            "maxItems": len(SKUS),
            "allOf": [
                {
                    "contains": {"properties": {"sku": {"const": sku}}},
                    "minContains": 0,
                    "maxContains": 1,
                }
                for sku in SKUS
            ],
        },
    )
    payment_method: str = Field(
        description="A test payment method: " + ", ".join(sorted(PAYMENT_METHODS)),
        json_schema_extra={"enum": METHODS},
    )

    # An unknown field is refused, not dropped: a typo ("quantiy") is the caller's to hear of.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"items": [{"sku": "MUG-CLASSIC", "quantity": 2}], "payment_method": "pm_card_visa"}
            ]
        },
    )

    @field_validator("payment_method")
    @classmethod
    def _known_payment_method(cls, value: str) -> str:
        if value not in PAYMENT_METHODS:
            raise ValueError(
                f"unknown payment method; use one of {', '.join(sorted(PAYMENT_METHODS))}"
            )
        return value


class OrderLineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int


class OrderOut(BaseModel):
    id: str
    status: str
    failure_code: str | None = None
    items: list[OrderLineOut]
    total_cents: int
    currency: str
    payment_method: str
    created_at: datetime
    updated_at: datetime


def _out(doc: dict[str, Any]) -> OrderOut:
    return OrderOut(
        id=doc["id"],
        status=doc["status"],
        failure_code=doc.get("failure_code"),
        items=[OrderLineOut(**line) for line in doc["items"]],
        total_cents=doc["total_cents"],
        currency=doc["currency"],
        payment_method=doc["payment_method"],
        created_at=as_utc(doc["created_at"]),
        updated_at=as_utc(doc["updated_at"]),
    )


@router.get("/products", response_model=Page[ProductOut], tags=["catalog"], summary="The catalog")
def list_products(
    store: Store[OrderStore], limit: Limit = MAX_LIMIT, offset: Offset = 0
) -> Page[ProductOut]:
    # The whole catalog in one page by default: the storefront shows it all.
    products = list(store.catalog.products().values())
    return Page[ProductOut](
        items=[ProductOut(**p.__dict__) for p in products[offset : offset + limit]],
        total=len(products),
        limit=limit,
        offset=offset,
    )


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderOut,
    summary="Place an order; it is paid asynchronously",
    responses={409: {"description": "Idempotency-Key reused with a different body"}},
)
def place_order(
    body: OrderIn,
    response: Response,
    principal: CurrentPrincipal,
    store: Store[OrderStore],
    idempotency_key: IdempotencyKey,
) -> OrderOut:
    items = [RequestedItem(i.sku, i.quantity) for i in body.items]
    priced = price_order(items, store.catalog.products())
    doc, created = store.orders.place(
        user_id=principal.user_id,
        idempotency_key=idempotency_key,
        idempotency_id=idempotency_id(principal.user_id, idempotency_key),
        fingerprint=request_fingerprint(items, body.payment_method),
        priced=priced,
        payment_method=body.payment_method,
        headers=current_trace_headers(),
    )
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return _out(doc)


@router.get("/orders", response_model=Page[OrderOut], summary="The caller's orders, newest first")
def list_orders(
    principal: CurrentPrincipal,
    store: Store[OrderStore],
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[OrderOut]:
    docs, total = store.orders.list_for_user(principal.user_id, limit, offset)
    return Page[OrderOut](items=[_out(d) for d in docs], total=total, limit=limit, offset=offset)


@router.get("/orders/{order_id}", response_model=OrderOut, summary="One of the caller's orders")
def get_order(
    order_id: Annotated[str, Path(pattern=UUID_PATTERN)],
    principal: CurrentPrincipal,
    store: Store[OrderStore],
) -> OrderOut:
    doc = store.orders.get(principal.user_id, order_id)
    if doc is None:
        # Someone else's order looks exactly like a missing one.
        raise NotFound(f"order {order_id} not found")
    return _out(doc)
