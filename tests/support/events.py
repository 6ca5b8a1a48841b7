"""Events the platform tests send: a valid order.created with a fresh order id."""

from __future__ import annotations

import uuid

from microshop.events import OrderCreated


def order_created(order_id: str | None = None) -> OrderCreated:
    return OrderCreated(
        order_id=order_id or str(uuid.uuid4()),
        user_id="u-1",
        total_cents=1250,
        currency="EUR",
        payment_method="pm_card_visa",
    )
