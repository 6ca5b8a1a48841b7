"""The event contracts: each event's name, version and fields, shared by producers and consumers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

EXCHANGE = "microshop.events"


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event carries; `type` is also the AMQP routing key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: datetime = Field(default_factory=_now)
    version: int = 1


class OrderCreated(Event):
    type: Literal["order.created"] = "order.created"
    order_id: str
    user_id: str
    total_cents: int
    currency: str
    payment_method: str
    # When the order was placed (a re-driven order.created occurs later): payments copies it
    # onto the outcome, so orders can time placed → settled without reading the order back.
    placed_at: datetime | None = None


class PaymentSucceeded(Event):
    type: Literal["payment.succeeded"] = "payment.succeeded"
    payment_id: str
    order_id: str
    user_id: str
    amount_cents: int
    currency: str
    placed_at: datetime | None = None  # the order's, from its order.created, if it says


class PaymentFailed(Event):
    type: Literal["payment.failed"] = "payment.failed"
    payment_id: str
    order_id: str
    user_id: str
    amount_cents: int
    currency: str
    failure_code: str
    placed_at: datetime | None = None  # as on payment.succeeded


class NotificationSent(Event):
    """The buyer was told their order is paid; orders records it, so its re-drive sweeper knows
    which PAID orders still wait for their notification."""

    type: Literal["notification.sent"] = "notification.sent"
    notification_id: str
    order_id: str
    user_id: str


def event_type(event: type[Event]) -> str:
    """The type an event class declares: its `type` field, also its AMQP routing key."""
    declared: str = event.model_fields["type"].default
    return declared


KnownEvent = OrderCreated | PaymentSucceeded | PaymentFailed | NotificationSent
AnyEvent = Annotated[KnownEvent, Field(discriminator="type")]
_any_event: TypeAdapter[KnownEvent] = TypeAdapter(AnyEvent)


def parse_event(body: bytes | str | dict) -> KnownEvent:
    """Decode an event from the bus or an outbox row; a malformed one raises ValidationError."""
    if isinstance(body, dict):
        return _any_event.validate_python(body)
    return _any_event.validate_json(body)
