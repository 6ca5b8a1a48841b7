"""Prometheus metrics of one service, in a registry of its own (five apps share a process in
standalone mode, and each must serve only its own /metrics)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Backlog = Callable[[], tuple[int, float]]
"""How many events wait in an outbox, and the age in seconds of the oldest."""


class ServiceMetrics:
    """Request, event and outbox metrics; services add their own families to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "microshop_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_errors = Counter(
            "microshop_http_request_errors",
            "HTTP requests answered with a 5xx status, by route template, method and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "microshop_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["method", "route"],
            registry=r,
        )

        def by_type(name: str, documentation: str) -> Counter:
            return Counter(name, f"{documentation}, by type", ["type"], registry=r)

        self.events_published = by_type(
            "microshop_events_published", "Events confirmed by the broker"
        )
        self.events_consumed = by_type(
            "microshop_events_consumed",
            "Events handled (committed, or skipped as already processed)",
        )
        self.events_retried = by_type(
            "microshop_events_retried",
            "Deliveries whose handler failed and that will be tried again",
        )
        self.events_dead_lettered = by_type(
            "microshop_events_dead_lettered", "Events dead-lettered after their last failed try"
        )
        self.events_unhandled = by_type(
            "microshop_events_unhandled",
            "Deliveries of an event type the queue's consumer has no handler for (each is "
            "dead-lettered at once)",
        )
        self._outbox: Backlog | None = None
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        r.register(_OutboxCollector(self))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status): `labels()`
        # takes a lock and builds a key, which is measurable on the gateway's hot path.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            code = str(status)
            children = self._request_children[key] = (
                self.requests.labels(method, route, code),
                self.request_errors.labels(method, route, code) if status >= 500 else None,
                self.request_seconds.labels(method, route),
            )
        requests, errors, duration = children
        requests.inc()
        if errors is not None:
            errors.inc()
        duration.observe(seconds)

    def watch_outbox(self, backlog: Backlog) -> None:
        """Report this outbox's backlog on every scrape (the store is only read then)."""
        self._outbox = backlog

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _OutboxCollector(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        backlog = self.metrics._outbox
        if backlog is None:
            return
        try:
            count, age = backlog()
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("outbox backlog unavailable: %r", exc)
            return
        yield GaugeMetricFamily(
            "microshop_outbox_backlog_events", "Events written but not yet published", value=count
        )
        yield GaugeMetricFamily(
            "microshop_outbox_oldest_event_age_seconds",
            "Age of the oldest event not yet published (0 when none waits)",
            value=age,
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())
