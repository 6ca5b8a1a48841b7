"""Event handlers of the orders service: a payment succeeded or failed, so settle the order."""

from __future__ import annotations

import logging

from microshop.events import PaymentFailed, PaymentSucceeded
from microshop.orders.store import OrderStore
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import decode

log = logging.getLogger(__name__)

QUEUE = "orders.payment-events"
ROUTING_KEYS = ("payment.succeeded", "payment.failed")


class PaymentOutcomeHandler:
    def __init__(self, store: OrderStore) -> None:
        self.store = store

    def __call__(self, message: IncomingMessage) -> None:
        event = decode(message)
        if not isinstance(event, PaymentSucceeded | PaymentFailed):
            return
        failure_code = event.failure_code if isinstance(event, PaymentFailed) else None
        outcome = self.store.apply_payment_outcome(
            order_id=event.order_id,
            event_id=event.event_id,
            event_type=event.type,
            failure_code=failure_code,
        )
        log.info(
            "payment outcome %s", outcome, extra={"order_id": event.order_id, "event": event.type}
        )
