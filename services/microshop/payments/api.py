"""Public routes of the payments service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from microshop.payments.store import PaymentStore
from microshop.platform.deps import CurrentPrincipal, Store
from microshop.platform.pages import Limit, Offset, Page
from microshop.platform.text import UUID_PATTERN

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


class PaymentOut(BaseModel):
    id: str
    order_id: str
    amount_cents: int
    currency: str
    status: str
    failure_code: str | None
    created_at: datetime


@router.get("", response_model=Page[PaymentOut], summary="The caller's payments, newest first")
def list_payments(
    principal: CurrentPrincipal,
    store: Store[PaymentStore],
    limit: Limit = 20,
    offset: Offset = 0,
    order_id: Annotated[
        str | None, Query(pattern=UUID_PATTERN, description="Only the payment of this order")
    ] = None,
) -> Page[PaymentOut]:
    payments, total = store.list_for_user(principal.user_id, limit, offset, order_id)
    return Page[PaymentOut](
        items=[PaymentOut.model_validate(p, from_attributes=True) for p in payments],
        total=total,
        limit=limit,
        offset=offset,
    )
