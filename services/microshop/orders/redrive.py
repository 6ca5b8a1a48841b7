"""The re-drive sweeper: nothing waits forever (issue 10.2). An order still PENDING after
`redrive_after_seconds` gets its order.created published again (payments charges an order once
and re-sends the outcome of one already charged); a PAID order whose notification.sent has not
come back in that time likewise, so payments re-sends payment.succeeded and notifications (one
notification per order) announces it again.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter

from microshop.orders.store.redrive import Redrives
from microshop.platform.retry import Backoff, until_stopped

log = logging.getLogger(__name__)


class RedriveSweeper:
    """A background thread sweeping every `interval_seconds`, driving each order again by the
    period its store's Redrives hold (`after_seconds`); a sweep that fails (the database is
    away) is tried again with `backoff`."""

    def __init__(
        self,
        redrives: Redrives,
        registry: CollectorRegistry,
        interval_seconds: float,
        backoff: Backoff,
    ) -> None:
        self.redrives = redrives
        self.interval_seconds = interval_seconds
        self.redriven = Counter(
            "microshop_orders_redriven",
            "Orders driven again by the sweeper: payment_missing (still PENDING) or "
            "notification_missing (PAID, no notification recorded)",
            ["reason"],
            registry=registry,
        )
        for reason in ("payment_missing", "notification_missing"):
            self.redriven.labels(reason)
        self._stop = threading.Event()
        self._retrying = until_stopped(backoff, self._stop, log, "re-drive sweep")
        self._thread = threading.Thread(target=self._run, name="orders-redrive", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sweep(self) -> int:
        driven = self.redrives.sweep(self.redrives.after_seconds)
        for order_id, reason in driven:
            self.redriven.labels(reason).inc()
            log.warning("order driven again: %s", reason, extra={"order_id": order_id})
        return len(driven)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            try:
                self._retrying(self.sweep)
            except Exception:  # only once stopping (Stopped, or the last failure)
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
