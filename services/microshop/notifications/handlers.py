"""Event handlers of the notifications service: a payment succeeded, so tell the buyer."""

from __future__ import annotations

from microshop.events import PaymentSucceeded
from microshop.notifications.store import NotificationStore
from microshop.platform.subscriptions import Subscription

QUEUE = "notifications.payment-events"


class PaymentSucceededHandler:
    """Records one order_paid notification per order, however often its event arrives."""

    def __init__(self, store: NotificationStore) -> None:
        self.store = store

    def __call__(self, event: PaymentSucceeded, headers: dict[str, str]) -> None:
        self.store.notify_paid_once(event)


# payment.failed is deliberately not handled (nor bound): a failed payment notifies no one.
SUBSCRIPTION = Subscription[NotificationStore](QUEUE).on(PaymentSucceeded, PaymentSucceededHandler)
