"""Event handlers of the payments service: an order was created, so charge it."""

from __future__ import annotations

from microshop.events import OrderCreated
from microshop.payments.store import PaymentStore
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import decode

QUEUE = "payments.order-events"
ROUTING_KEYS = ("order.created",)


class OrderCreatedHandler:
    """Charges the order once; its payment and outcome event are one transaction."""

    def __init__(self, store: PaymentStore) -> None:
        self.store = store

    def __call__(self, message: IncomingMessage) -> None:
        event = decode(message)
        if not isinstance(event, OrderCreated):
            return
        self.store.charge_once(event, message.headers)
