"""Traces and metrics for a service: the OpenTelemetry SDK once per process, spans at our edges.

Tracing is off unless an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`MICROSHOP_OTLP_ENDPOINT`): then no span is made anywhere and the only cost on a request is a
`tracer is None` test. When it is on, each service gets its own TracerProvider (so the five
services of standalone mode report their own `service.name` from one process) sharing one
span processor. The spans are made here, at the edges we own (ASGI, the SQLAlchemy engine, the
document store's collections; the bus in `bus/instrumented.py`, the gateway's upstream call in
`gateway/forwarder.py`): the contrib instrumentation packages pin the SDK to their own beta release
line (adding opentelemetry-instrumentation-sqlalchemy moved the SDK back a release and brought
wrapt), and mongomock sends no pymongo command events for theirs to see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from sqlalchemy import Engine, event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microshop.platform.context import service_var
from microshop.platform.metrics import ServiceMetrics

# Probes and scrapes would drown the real traffic in traces and request metrics.
UNOBSERVED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

_lock = threading.Lock()
_processors: list[SpanProcessor] = []  # empty: tracing is off in this process
_providers: dict[str, TracerProvider] = {}


def configure(endpoint: str = "", *, exporter: SpanExporter | None = None) -> bool:
    """Start the process's span pipeline once; True when tracing is on (now or before).

    `exporter` (tests) exports each span as it ends; otherwise spans are batched to the OTLP/HTTP
    `endpoint`. Without either, and with no pipeline yet, tracing stays off.
    """
    with _lock:
        if _processors:
            return True
        if exporter is not None:
            _processors.append(SimpleSpanProcessor(exporter))
        elif endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
        return bool(_processors)


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's signal path under a base endpoint, as the SDK does for the env variable."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def tracer_for(service: str) -> Tracer | None:
    """The service's tracer, or None when tracing is off in this process."""
    with _lock:
        if not _processors:
            return None
        provider = _providers.get(service)
        if provider is None:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            for processor in _processors:
                provider.add_span_processor(processor)
            _providers[service] = provider
        return provider.get_tracer("microshop")


def shutdown() -> None:
    """Flush and stop the pipeline; tracing is off again (tests, process exit)."""
    with _lock:
        for processor in _processors:
            processor.shutdown()
        _processors.clear()
        _providers.clear()


@dataclass
class ServiceTelemetry:
    """What one service (one app) records: its tracer, if tracing is on, and its metrics."""

    service: str
    tracer: Tracer | None
    metrics: ServiceMetrics

    @classmethod
    def open(cls, service: str, otlp_endpoint: str = "") -> ServiceTelemetry:
        configure(otlp_endpoint)
        return cls(service, tracer_for(service), ServiceMetrics())


class _HeaderGetter(Getter[list[tuple[bytes, bytes]]]):
    """Reads W3C trace headers straight from an ASGI scope's raw header list."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_SCOPE_HEADERS = _HeaderGetter()


def fastapi_route(scope: Scope) -> str:
    """The route template FastAPI matched (never the raw path: ids would explode the labels)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


@contextmanager
def server_span(
    tracer: Tracer, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> Iterator[Span]:
    """A server span for one request, continuing the caller's trace from its headers."""
    parent = propagate.extract(headers, getter=_SCOPE_HEADERS)
    with tracer.start_as_current_span(
        method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
        record_exception=True,
        set_status_on_exception=True,
    ) as span:
        yield span


class HttpTelemetry:
    """ASGI middleware: request metrics per route template and, when tracing, a server span."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: ServiceTelemetry,
        route_of: Callable[[Scope], str] = fastapi_route,
    ) -> None:
        self.app, self.telemetry, self.route_of = app, telemetry, route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNOBSERVED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the caller gets when the app raises before answering
        service_token = service_var.set(self.telemetry.service)

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method: str = scope["method"]
        tracer = self.telemetry.tracer
        try:
            if tracer is None:
                await self.app(scope, receive, send_recording_status)
                return
            with server_span(tracer, method, scope["path"], scope["headers"]) as span:
                try:
                    await self.app(scope, receive, send_recording_status)
                finally:
                    route = self.route_of(scope)
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
        finally:
            service_var.reset(service_token)
            self.telemetry.metrics.observe_request(
                method, self.route_of(scope), status, time.perf_counter() - started
            )


def _recording() -> bool:
    return trace.get_current_span().is_recording()


def trace_engine(engine: Engine, tracer: Tracer) -> None:
    """A client span per SQL statement run inside a traced request or message.

    Statements outside any span (the outbox relay's polling) make none: a root trace every
    poll would bury the real ones. Bound parameters are never recorded: they hold user data.
    """
    system = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not _recording():
            return
        operation = statement.lstrip().split(" ", 1)[0].upper()
        span = tracer.start_span(
            f"{operation} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": system, "db.query.text": statement},
        )
        conn.info.setdefault("_microshop_spans", []).append(span)

    @event.listens_for(engine, "after_cursor_execute")
    def _end(conn: Any, *_: Any) -> None:
        spans = conn.info.get("_microshop_spans")
        if spans:
            spans.pop().end()

    @event.listens_for(engine, "handle_error")
    def _fail(context: Any) -> None:
        spans = context.connection.info.get("_microshop_spans") if context.connection else None
        if spans:
            span = spans.pop()
            span.set_status(Status(StatusCode.ERROR, type(context.original_exception).__name__))
            span.end()


class TracedCollection:
    """A pymongo-API collection whose commands make client spans (as pymongo's own monitoring
    would on a server, but also on mongomock), inside a traced request or message."""

    _COMMANDS = frozenset(
        {
            "insert_one",
            "find_one",
            "update_one",
            "count_documents",
            "find",
            "create_index",
            "delete_many",
            "update_many",
        }
    )

    def __init__(self, collection: Any, tracer: Tracer) -> None:
        self._collection, self._tracer = collection, tracer

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if name not in self._COMMANDS:
            return attribute

        def command(*args: Any, **kwargs: Any) -> Any:
            if not _recording():
                return attribute(*args, **kwargs)
            with self._tracer.start_as_current_span(
                f"{name} {self._collection.name}",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system.name": "mongodb",
                    "db.collection.name": self._collection.name,
                    "db.operation.name": name,
                },
            ):
                return attribute(*args, **kwargs)

        return command


class TracedConnection:
    """A sqlite3 connection whose statements make client spans, as `trace_engine` does for
    SQLAlchemy's, inside a traced request or message (the embedded orders store's)."""

    def __init__(self, connection: Any, tracer: Tracer) -> None:
        self._connection, self._tracer = connection, tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def execute(self, statement: str, parameters: Any = ()) -> Any:
        return self._traced(self._connection.execute, statement, parameters)

    def executemany(self, statement: str, parameters: Any) -> Any:
        return self._traced(self._connection.executemany, statement, parameters)

    def _traced(self, run: Any, statement: str, parameters: Any) -> Any:
        if not _recording():
            return run(statement, parameters)
        operation = statement.lstrip().split(" ", 1)[0].upper()
        with self._tracer.start_as_current_span(
            f"{operation} sqlite",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "sqlite", "db.query.text": statement},
        ):
            return run(statement, parameters)


_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})


def inject_into(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with their trace context replaced by the current span's."""
    carried = {k: v for k, v in headers.items() if k not in _TRACE_HEADERS}
    propagate.inject(carried)
    return carried
