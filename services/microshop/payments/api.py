"""Public routes of the payments service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from microshop.payments.models import Payment
from microshop.payments.store import PaymentStore
from microshop.platform.deps import CurrentPrincipal, Store

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


class PaymentOut(BaseModel):
    id: str
    order_id: str
    amount_cents: int
    currency: str
    status: str
    failure_code: str | None
    created_at: datetime


@router.get("", response_model=list[PaymentOut], summary="The caller's payments")
def list_payments(
    principal: CurrentPrincipal,
    store: Store[PaymentStore],
    order_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[Payment]:
    return store.list_for_user(principal.user_id, order_id)
