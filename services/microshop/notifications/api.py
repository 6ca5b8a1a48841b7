"""Public routes of the notifications service: the caller's notifications and their read state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict

from microshop.notifications.models import Notification
from microshop.notifications.store import NotificationStore
from microshop.platform.deps import CurrentPrincipal, Store
from microshop.platform.pages import Limit, Offset, Page
from microshop.platform.text import UUID_PATTERN

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    order_id: str
    type: str
    message: str
    created_at: datetime
    read_at: datetime | None = None


class NotificationPage(Page[NotificationOut]):
    pass


@router.get(
    "",
    response_model=NotificationPage,
    summary="The caller's notifications, newest first",
    description="With `unread=true`, only those not marked read: its `total` is the unread count.",
)
def list_notifications(
    principal: CurrentPrincipal,
    store: Store[NotificationStore],
    limit: Limit = 20,
    offset: Offset = 0,
    unread: Annotated[bool, Query(description="Only the unread ones")] = False,
) -> NotificationPage:
    found, total = store.list_for_user(principal.user_id, limit, offset, unread_only=unread)
    return NotificationPage(
        items=[NotificationOut.model_validate(n) for n in found],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post(
    "/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark one of the caller's notifications read",
    description="Idempotent: marking it again answers the same, with the first `read_at`.",
    responses={404: {"description": "No such notification of the caller's"}},
)
def mark_notification_read(
    notification_id: Annotated[str, Path(pattern=UUID_PATTERN)],
    principal: CurrentPrincipal,
    store: Store[NotificationStore],
) -> Notification:
    return store.mark_read(principal.user_id, notification_id, datetime.now(UTC))
