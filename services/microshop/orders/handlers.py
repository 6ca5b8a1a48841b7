"""Event handlers of the orders service: a payment succeeded or failed, so settle the order; the
buyer was notified, so the re-drive sweeper may leave the order alone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram

from microshop.events import NotificationSent, PaymentFailed, PaymentSucceeded
from microshop.orders.domain import OrderStatus, next_status
from microshop.orders.store import OrderStore
from microshop.platform.subscriptions import Subscription

log = logging.getLogger(__name__)

QUEUE = "orders.payment-events"


class SettledOrders:
    """Orders by the final state they reached, and how long they took to get there."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.count = Counter(
            "microshop_orders_settled",
            "Orders that reached a final state, by that state",
            ["status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "microshop_order_settle_seconds",
            "Time from an order being placed to its payment outcome being applied",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=registry,
        )

    def observe(self, status: str, placed_at: datetime | None) -> None:
        self.count.labels(status).inc()
        if placed_at is not None:
            self.seconds.observe(max((datetime.now(UTC) - placed_at).total_seconds(), 0.0))


class PaymentOutcomeHandler:
    """Settles the order once: PAID or PAYMENT_FAILED, by the outcome's event."""

    def __init__(
        self,
        store: OrderStore,
        settled: SettledOrders | None = None,
    ) -> None:
        self.orders = store.orders
        self.settled = settled

    def __call__(self, event: PaymentSucceeded | PaymentFailed, headers: dict[str, str]) -> None:
        failure_code = event.failure_code if isinstance(event, PaymentFailed) else None
        settlement = self.orders.apply_payment_outcome(
            order_id=event.order_id,
            event_id=event.event_id,
            event_type=event.type,
            failure_code=failure_code,
            placed_at=event.placed_at,
        )  # which also starts a PAID order's wait for its notification (the store's period)
        if settlement.outcome == "applied" and self.settled is not None:
            status = next_status(OrderStatus.PENDING, event.type)
            self.settled.observe(status.value, settlement.placed_at)
        log.info(
            "payment outcome %s",
            settlement.outcome,
            extra={"order_id": event.order_id, "event": event.type},
        )


class NotificationSentHandler:
    """Records that a PAID order's buyer was notified (at most once)."""

    def __init__(self, store: OrderStore) -> None:
        self.redrives = store.redrives

    def __call__(self, event: NotificationSent, headers: dict[str, str]) -> None:
        self.redrives.mark_notified(event.order_id)


def subscription(settled: SettledOrders | None = None) -> Subscription[OrderStore]:
    """Both payment outcomes, each settling the order (and observed in `settled`), and the
    notification of a paid one."""

    def handler(store: OrderStore) -> PaymentOutcomeHandler:
        return PaymentOutcomeHandler(store, settled)

    return (
        Subscription[OrderStore](QUEUE)
        .on(PaymentSucceeded, handler)
        .on(PaymentFailed, handler)
        .on(NotificationSent, NotificationSentHandler)
    )
