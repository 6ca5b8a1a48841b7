"""Public routes of the orders service: the catalog and the caller's orders."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field, StrictInt, field_validator

from microshop.orders.domain import (
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
from microshop.platform.tracing import current_trace_headers

router = APIRouter(prefix="/api/v1", tags=["orders"])


class ProductOut(BaseModel):
    sku: str
    name: str
    price_cents: int
    currency: str


class ItemIn(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    # Strict: "2" and true are not quantities (pydantic would otherwise coerce them).
    quantity: StrictInt = Field(ge=MIN_QUANTITY, le=MAX_QUANTITY)


class OrderIn(BaseModel):
    items: list[ItemIn] = Field(min_length=1, max_length=50)
    payment_method: str = Field(
        description="A test payment method: " + ", ".join(sorted(PAYMENT_METHODS))
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


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    limit: int
    offset: int


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


# HEAD answers like GET without a body; kept out of the schema so GET keeps one operation id.
@router.head("/products", include_in_schema=False)
@router.get("/products", response_model=list[ProductOut], tags=["catalog"], summary="The catalog")
def list_products(store: Store[OrderStore]) -> list[ProductOut]:
    return [ProductOut(**p.__dict__) for p in store.catalog.products().values()]


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
    idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
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


@router.get("/orders", response_model=OrderPage, summary="The caller's orders, newest first")
def list_orders(
    principal: CurrentPrincipal,
    store: Store[OrderStore],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> OrderPage:
    docs, total = store.orders.list_for_user(principal.user_id, limit, offset)
    return OrderPage(items=[_out(d) for d in docs], total=total, limit=limit, offset=offset)


@router.get("/orders/{order_id}", response_model=OrderOut, summary="One of the caller's orders")
def get_order(order_id: str, principal: CurrentPrincipal, store: Store[OrderStore]) -> OrderOut:
    doc = store.orders.get(principal.user_id, order_id)
    if doc is None:
        # Someone else's order looks exactly like a missing one.
        raise NotFound(f"order {order_id} not found")
    return _out(doc)
