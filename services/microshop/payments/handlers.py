"""Event handlers of the payments service: an order was created, so charge it."""

from __future__ import annotations

from microshop.events import OrderCreated
from microshop.payments.store import PaymentStore
from microshop.platform.subscriptions import Subscription

QUEUE = "payments.order-events"


class OrderCreatedHandler:
    """Charges the order once; its payment and outcome event are one transaction."""

    def __init__(self, store: PaymentStore) -> None:
        self.store = store

    def __call__(self, event: OrderCreated, headers: dict[str, str]) -> None:
        self.store.charge_once(event, headers)


SUBSCRIPTION = Subscription[PaymentStore](QUEUE).on(OrderCreated, OrderCreatedHandler)
