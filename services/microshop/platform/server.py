"""The HTTP server every process runs: uvicorn with limits that answer fast, in JSON.

uvicorn's httptools parser has no size limit at all (a 64 MB header was read for 14 s and
answered 200), and its only size option, `h11_max_incomplete_event_size`, belongs to the slower
h11 parser and answers a plain-text 400. So the limits live in two places:

- `LimitedHttpToolsProtocol`, uvicorn's own protocol with a few callbacks more, refuses while
  the request head is still arriving: an URL over `max_url_bytes` (414), a field over
  `max_header_field_bytes` or a head over `max_header_bytes` (431), a head not complete within
  `header_timeout_seconds` (408), a `Content-Length` over `max_body_bytes` (413), and anything
  httptools cannot parse (400). It answers as soon as the limit is passed and closes the
  connection, so nothing more is buffered.
- `BodyGuard`, an ASGI wrapper, reads the body before the app does: over `max_body_bytes` (413,
  for chunked bodies), not complete within `body_timeout_seconds` (408), JSON nested deeper
  than `max_json_depth` (400).

Every refusal is `{"detail": …, "request_id": …}` with `Connection: close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import httptools
import uvicorn
from fastapi import FastAPI
from prometheus_client import make_asgi_app
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from microshop.platform.context import accept_or_make_request_id, request_id_var
from microshop.platform.errors import error_body
from microshop.platform.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerLimits:
    """What one request may be and how long its sender may take, for every process: the
    services' uvicorn and the gateway's own server read the same MICROSHOP_MAX_* settings."""

    max_url_bytes: int = 8192
    max_header_field_bytes: int = 8192
    max_header_bytes: int = 32_768
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # The gateway's own server (gateway/server.py) also needs these; uvicorn has its own.
    # An idle keep-alive connection is closed after this (uvicorn's default).
    keepalive_timeout_seconds: float = 5.0
    # A caller that reads nothing of a response for this long is cut off.
    write_timeout_seconds: float = 30.0
    # Pipelined requests parsed ahead of their answers before reading pauses.
    max_pipelined: int = 16

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ServerLimits:
        return cls(
            max_url_bytes=settings.max_url_bytes,
            max_header_field_bytes=settings.max_header_field_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            max_json_depth=settings.max_json_depth,
            header_timeout_seconds=settings.header_timeout_seconds,
            body_timeout_seconds=settings.body_timeout_seconds,
        )


def error_bytes(status: int, detail: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection."""
    body = json.dumps(error_body(detail, request_id)).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-request-id: " + request_id.encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


UNKNOWN_METHOD = "the request method is not one this server implements"
# RFC 9112 §3: method SP request-target SP HTTP-version, the method a token (RFC 9110 §5.6.2).
_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [!-~]+ HTTP/[0-9]\.[0-9]\r?\n")


def unknown_method(exc: httptools.HttpParserError, data: bytes) -> bool:
    """True when llhttp refused a well-formed request line for its method alone: RFC 9110
    §15.6.2 answers that 501 (llhttp knows every registered method; those reach the routes,
    which answer 405 with Allow). Anything else that does not parse is a 400."""
    return isinstance(exc, httptools.HttpParserInvalidMethodError) and bool(
        _REQUEST_LINE.match(data)
    )


LINGER_SECONDS = 1.0
"""How long a refused connection's further bytes are read and dropped before it is closed."""


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; the refusal is on the protocol."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing an oversized or slow request head."""

    limits: ServerLimits = ServerLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._refusal: tuple[int, str] | None = None
        self._discarding = False
        self._in_head = True  # a connection that never sends a byte is a slow head too
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_too_slow
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            # Between two requests on a keep-alive connection uvicorn's own keep-alive timeout
            # governs; only a request that has started, or a silent new connection, is slow.
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm_head_timer()  # a pipelined head behind a slow answer: look again
                return
            self._refuse(408, "the request head did not arrive in time")

    def _refuse(self, status: int, detail: str) -> None:
        self._cancel_head_timer()
        incoming = next((v for k, v in self.headers or () if k == b"x-request-id"), None)
        request_id = accept_or_make_request_id(incoming.decode("latin-1") if incoming else None)
        log.info("refused a request: %s %s", status, detail, extra={"request_id": request_id})
        if self.transport.is_closing():
            return
        self.transport.write(error_bytes(status, detail, request_id))
        # A close with the caller's bytes unread makes the kernel send a reset, which can
        # destroy the answer before the caller reads it. So: end our side, discard what still
        # arrives for a moment (bounded in time, not buffered), then close.
        self._discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if self._refusal is None:
                self._refusal = (
                    (501, UNKNOWN_METHOD)
                    if unknown_method(exc, data)
                    else (400, "the request is not valid HTTP/1.1")
                )
        if (
            self._refusal is None
            and self._in_head
            and self._head_bytes > self.limits.max_header_bytes
        ):
            self._refusal = (431, f"the request head is over {self.limits.max_header_bytes} bytes")
        if self._refusal is not None:
            self._refuse(*self._refusal)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "the request is not valid HTTP/1.1")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_url_bytes:
            self._refusal = (414, f"the URL is over {self.limits.max_url_bytes} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        if size > self.limits.max_header_field_bytes:
            shown = name[:64].decode("latin-1").lower()
            self._refusal = (
                431,
                f"the header field {shown!r} is over {self.limits.max_header_field_bytes} bytes",
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        head = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
        if head > self.limits.max_header_bytes:
            self._refusal = (431, f"the request head is over {self.limits.max_header_bytes} bytes")
            raise _Refused
        length = next((v for k, v in self.headers if k == b"content-length"), b"")
        if length.isdigit() and int(length) > self.limits.max_body_bytes:
            self._refusal = (413, f"the request body is over {self.limits.max_body_bytes} bytes")
            raise _Refused
        super().on_headers_complete()


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_A_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
# Openers count +1 and closers -1 as signed bytes, so `accumulate` runs the depth in C.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when the JSON text nests arrays and objects deeper than `limit`.

    Brackets inside strings do not count; the text need not be valid (the parser says so
    later). Linear, with the loops in C: a megabyte of `[` is checked in milliseconds.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", body)).translate(None, _NOT_A_BRACKET)
    steps = array("b", brackets.translate(_DEPTH_STEPS))
    return max(accumulate(steps), default=0) > limit


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, whole, then the real `receive`
    (for the disconnect that follows): for middleware that must read the body first."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class BodyGuard:
    """Reads the request body before the app: size, time and JSON depth, then replays it."""

    def __init__(self, app: ASGIApp, limits: ServerLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await asyncio.wait_for(
                self._read(receive), timeout=self.limits.body_timeout_seconds
            )
        except TimeoutError:
            await self._refuse(scope, send, 408, "the request body did not arrive in time")
            return
        except _TooLarge:
            await self._refuse(
                scope, send, 413, f"the request body is over {self.limits.max_body_bytes} bytes"
            )
            return
        except _Disconnected:
            return
        if body and _is_json(scope) and json_depth_exceeds(body, self.limits.max_json_depth):
            await self._refuse(
                scope, send, 400, f"the JSON body nests deeper than {self.limits.max_json_depth}"
            )
            return
        await self.app(scope, replaying(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = accept_or_make_request_id(incoming.decode("latin-1") if incoming else None)
        token = request_id_var.set(request_id)
        try:
            log.info("refused a request: %s %s", status, detail)
        finally:
            request_id_var.reset(token)
        body = json.dumps(error_body(detail, request_id)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


def server_config(app: ASGIApp, settings: ServiceSettings, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of one app, its limits included."""
    limits = ServerLimits.from_settings(settings)
    return uvicorn.Config(
        BodyGuard(app, limits),
        host=settings.host,
        port=settings.port,
        http=_protocol(limits),
        log_config=None,
        access_log=False,
        **options,
    )


def _protocol(limits: ServerLimits) -> type[LimitedHttpToolsProtocol]:
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})


class MetricsApp:
    """GET /metrics from the app's own registry (prometheus-client's ASGI app); JSON 404 else."""

    def __init__(self, app: FastAPI) -> None:
        self.exposition = make_asgi_app(registry=app.state.telemetry.metrics.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to open: acknowledge start and stop
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics":
            await self.exposition(scope, receive, send)
            return
        detail = "Not Found: metrics are at /metrics"
        body = json.dumps(error_body(detail, accept_or_make_request_id(None))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def metrics_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config | None:
    """The metrics port's server (same limits), or None when MICROSHOP_METRICS_PORT is 0."""
    if not settings.metrics_port:
        return None
    return uvicorn.Config(
        MetricsApp(app),
        host=settings.host,
        port=settings.metrics_port,
        http=_protocol(ServerLimits.from_settings(settings)),
        lifespan="off",
        log_config=None,
        access_log=False,
    )


class SignalFreeServer(uvicorn.Server):
    """One of several servers in one loop: signals are handled once, by whoever runs them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve the app on its port and its metrics on the metrics port, until a signal."""
    asyncio.run(_serve(app, settings))


async def _serve(app: FastAPI, settings: ServiceSettings) -> None:
    main = uvicorn.Server(server_config(app, settings))
    config = metrics_config(app, settings)
    listening = None if config is None else _listen(config)
    if config is None or listening is None:
        await main.serve()
        return
    metrics = SignalFreeServer(config)
    serving_metrics = asyncio.create_task(metrics.serve([listening]), name="metrics server")
    try:
        await main.serve()
    finally:
        metrics.should_exit = True
        await serving_metrics


def _listen(config: uvicorn.Config) -> socket.socket | None:
    """The metrics port's socket; None, logged, when it cannot be had: a service without its
    metrics still serves its callers (uvicorn itself would exit)."""
    try:
        return config.bind_socket()
    except SystemExit:  # uvicorn logged why (the port is taken, or not ours to bind)
        log.error("metrics are not served: port %s cannot be bound", config.port)
        return None


def serve_metrics_in_background(app: FastAPI, settings: ServiceSettings) -> None:
    """The metrics port on a thread of its own, for an app served by another server (the
    gateway's)."""
    config = metrics_config(app, settings)
    listening = None if config is None else _listen(config)
    if config is None or listening is None:
        return
    server = SignalFreeServer(config)
    threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="metrics server", daemon=True
    ).start()
