"""One trace per order: gateway → orders → outbox → payments → outbox → orders, notifications."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.unit.telemetry.conftest import run_saga, standalone


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def _find(spans: list[ReadableSpan], service: str, name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in spans if _service(s) == service and s.name == name and s.kind == kind]
    assert len(found) == 1, f"{service} {name} {kind}: {[(_service(s), s.name) for s in spans]}"
    return found[0]


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def render_tree(spans: list[ReadableSpan]) -> str:
    """The trace as an indented tree of `service: span name (kind, attempt, …)`, children by
    start time (a delivery's attempt, redelivered and ERROR only where they apply)."""
    ids = {s.context.span_id for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = _parent_id(span)
        children.setdefault(parent if parent in ids else None, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time or 0):
            notes = [span.kind.name]
            attempt = (span.attributes or {}).get("messaging.delivery.attempt")
            if attempt is not None:
                notes.append(f"attempt {attempt}")
            if (span.attributes or {}).get("microshop.delivery.redelivered"):
                notes.append("redelivered")
            if span.status.status_code == StatusCode.ERROR:
                notes.append("ERROR")
            lines.append(f"{'  ' * depth}{_service(span)}: {span.name} ({', '.join(notes)})")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def test_an_order_its_payment_and_its_notification_are_one_trace(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    async def scenario() -> dict:
        async with standalone(tmp_path) as shop:
            result = await run_saga(shop.gateway_url)
            # The consumers' spans end just after their commit, which the API already shows.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (
                sum(s.name == "payment.succeeded process" for s in spans.get_finished_spans()) < 2
            ):
                await asyncio.sleep(0.05)
            return result

    result = asyncio.run(scenario())
    assert result["order"]["status"] == "PAID"

    finished = list(spans.get_finished_spans())
    edge = _find(finished, "gateway", "POST /api/v1/orders", SpanKind.SERVER)
    trace = [s for s in finished if s.context.trace_id == edge.context.trace_id]
    print(f"\ntrace {edge.context.trace_id:032x}\n{render_tree(trace)}")

    assert edge.parent is None  # the client sent no trace context: the gateway starts it
    forward = _find(trace, "gateway", "POST orders", SpanKind.CLIENT)
    received = _find(trace, "orders", "POST /api/v1/orders", SpanKind.SERVER)
    created = _find(trace, "orders", "order.created publish", SpanKind.PRODUCER)
    charged = _find(trace, "payments", "order.created process", SpanKind.CONSUMER)
    outcome = _find(trace, "payments", "payment.succeeded publish", SpanKind.PRODUCER)
    settled = _find(trace, "orders", "payment.succeeded process", SpanKind.CONSUMER)
    notified = _find(trace, "notifications", "payment.succeeded process", SpanKind.CONSUMER)

    assert _parent_id(forward) == edge.context.span_id
    assert _parent_id(received) == forward.context.span_id
    # Published later by the relay thread, yet a child of the request that wrote the event.
    assert _parent_id(created) == received.context.span_id
    assert _parent_id(charged) == created.context.span_id
    # The payment's event carries the consume span's context, not the publish it came from.
    assert _parent_id(outcome) == charged.context.span_id
    assert _parent_id(settled) == outcome.context.span_id
    assert _parent_id(notified) == outcome.context.span_id

    # Database work happens under the span that caused it.
    under = {_parent_id(s): s for s in trace if s.kind == SpanKind.CLIENT and s is not forward}
    assert charged.context.span_id in under  # payments' SQL inside its consume span
    assert notified.context.span_id in under  # notifications' SQL
    assert received.context.span_id in under  # orders' insert_one
    assert {_service(s) for s in trace} == {"gateway", "orders", "payments", "notifications"}


def test_tracing_is_off_by_default(tmp_path: Path) -> None:
    async def scenario() -> dict:
        async with standalone(tmp_path) as shop:
            tracers = {name: app.state.telemetry.tracer for name, app in shop.apps.items()}
            return {"tracers": tracers, "saga": await run_saga(shop.gateway_url)}

    result = asyncio.run(scenario())
    assert result["saga"]["order"]["status"] == "PAID"
    assert set(result["tracers"].values()) == {None}
