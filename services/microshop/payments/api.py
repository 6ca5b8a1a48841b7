"""Public routes of the payments service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from microshop.payments.models import Payment
from microshop.platform.web import CurrentPrincipal

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
    request: Request,
    principal: CurrentPrincipal,
    order_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[Payment]:
    query = select(Payment).where(Payment.user_id == principal.user_id)
    if order_id is not None:
        query = query.where(Payment.order_id == order_id)
    with request.app.state.runtime.sessions() as session:
        return list(session.scalars(query.order_by(Payment.created_at.desc()).limit(100)))
