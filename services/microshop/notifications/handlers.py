"""Event handlers of the notifications service: a payment succeeded, so tell the buyer."""

from __future__ import annotations

from microshop.events import PaymentSucceeded
from microshop.notifications.store import NotificationStore
from microshop.platform.bus import IncomingMessage
from microshop.platform.outbox import decode

QUEUE = "notifications.payment-events"
# payment.failed is deliberately not bound: a failed payment notifies no one.
ROUTING_KEYS = ("payment.succeeded",)


class PaymentSucceededHandler:
    """Records one order_paid notification per order, however often its event arrives."""

    def __init__(self, store: NotificationStore) -> None:
        self.store = store

    def __call__(self, message: IncomingMessage) -> None:
        event = decode(message)
        if not isinstance(event, PaymentSucceeded):
            return
        self.store.notify_paid_once(event)
