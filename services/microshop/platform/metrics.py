"""Prometheus metrics of one service, in a registry of its own (five apps share a process in
standalone mode, and each must serve only its own /metrics)."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Backlog = Callable[[], tuple[int, float]]
"""How many events wait in an outbox, and the age in seconds of the oldest."""

ByQueue = Callable[[], Mapping[str, object]]
"""A value per consumed queue: why it is paused (absent when it is not), or a depth."""


class ServiceMetrics:
    """Request, event and outbox metrics; services add their own families to `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = _RequestCollector()
        r.register(self._requests)

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
        r.register(_OutboxCollector(self))
        self._paused: ByQueue | None = None
        self._dead_letters: ByQueue | None = None
        r.register(_ConsumerCollector(self))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request; called from the event loop's thread only."""
        counts = self._requests.counts
        key = (method, route, status)
        counts[key] = counts.get(key, 0) + 1
        durations = self._requests.durations.get((method, route))
        if durations is None:
            durations = self._requests.durations[(method, route)] = _Durations()
        durations.count += 1
        durations.sum += seconds
        durations.buckets[bisect.bisect_left(_BUCKETS, seconds)] += 1

    def watch_outbox(self, backlog: Backlog) -> None:
        """Report this outbox's backlog on every scrape (the store is only read then)."""
        self._outbox = backlog

    def watch_consumers(self, paused: ByQueue, dead_letters: ByQueue) -> None:
        """Report which consumers are paused and each dead-letter queue's depth on scrape."""
        self._paused, self._dead_letters = paused, dead_letters

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# prometheus-client's default histogram buckets (seconds); the last one is +Inf.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class _Durations:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.buckets = [0] * (len(_BUCKETS) + 1)


class _RequestCollector(Collector):
    """Request counts and latencies as plain numbers, turned into metric families on scrape.

    A prometheus-client Counter and Histogram cost ~5 us a request (a lock per increment and
    per bucket), measured on the gateway's hot path; counting in dicts costs ~1 us. The series
    and their names are those the Counter and Histogram had (without `_created`).
    """

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], _Durations] = {}

    def collect(self) -> Iterator[Metric]:
        labels = ["method", "route", "status"]
        requests = CounterMetricFamily(
            "microshop_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=labels,
        )
        errors = CounterMetricFamily(
            "microshop_http_request_errors",
            "HTTP requests answered with a 5xx status, by route template, method and status",
            labels=labels,
        )
        for (method, route, status), count in list(self.counts.items()):
            requests.add_metric([method, route, str(status)], count)
            if status >= 500:
                errors.add_metric([method, route, str(status)], count)
        seconds = HistogramMetricFamily(
            "microshop_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            labels=["method", "route"],
        )
        for (method, route), durations in list(self.durations.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, _BUCKETS), "+Inf"), durations.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            seconds.add_metric([method, route], buckets, durations.sum)
        yield from (requests, errors, seconds)

    def describe(self) -> Iterator[Metric]:
        return iter(())


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


class _ConsumerCollector(Collector):
    """`microshop_bus_consumer_paused{queue}` (1 while an infrastructure failure holds the
    queue's consumer) and `microshop_bus_dead_letter_messages{queue}`, for every queue the
    service consumes."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        depths_of, paused_of = self.metrics._dead_letters, self.metrics._paused
        if depths_of is None or paused_of is None:
            return
        depths, paused = depths_of(), paused_of()
        gauge = GaugeMetricFamily(
            "microshop_bus_consumer_paused",
            "1 while the queue's consumer is paused because its database (or broker) is away",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            "microshop_bus_dead_letter_messages",
            "Messages in the queue's dead-letter queue (`microshop-service dead-letters`)",
            labels=["queue"],
        )
        for queue in sorted(set(depths) | set(paused)):
            gauge.add_metric([queue], 1.0 if queue in paused else 0.0)
            dead.add_metric([queue], float(depths.get(queue, 0)))  # type: ignore[arg-type]
        yield from (gauge, dead)

    def describe(self) -> Iterator[Metric]:
        return iter(())
