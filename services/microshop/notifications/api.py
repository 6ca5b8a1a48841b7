"""Public routes of the notifications service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from microshop.notifications.models import Notification
from microshop.platform.web import CurrentPrincipal

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    id: str
    order_id: str
    type: str
    message: str
    created_at: datetime


@router.get("", response_model=list[NotificationOut], summary="The caller's notifications")
def list_notifications(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[Notification]:
    query = (
        select(Notification)
        .where(Notification.user_id == principal.user_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with request.app.state.runtime.sessions() as session:
        return list(session.scalars(query))
