"""Public routes of the notifications service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from microshop.notifications.models import Notification
from microshop.notifications.store import NotificationStore
from microshop.platform.deps import CurrentPrincipal, Store

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    id: str
    order_id: str
    type: str
    message: str
    created_at: datetime


@router.get("", response_model=list[NotificationOut], summary="The caller's notifications")
def list_notifications(
    principal: CurrentPrincipal,
    store: Store[NotificationStore],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[Notification]:
    return store.list_for_user(principal.user_id, limit, offset)
