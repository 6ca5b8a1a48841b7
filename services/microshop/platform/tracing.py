"""Trace context for messages: W3C traceparent carried in event headers across the bus."""

from __future__ import annotations

from opentelemetry import propagate


def current_trace_headers() -> dict[str, str]:
    """The current trace context as message headers (empty when no span is recording)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
