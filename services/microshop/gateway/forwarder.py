"""The /api/v1 forwarder: route, check the token at the edge, rewrite headers, relay the answer."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from http import HTTPStatus

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from microshop.gateway.routes import NOT_FOUND, PUBLIC, TOKEN_NEEDED, Route, RouteTable
from microshop.gateway.server import Header, Request, Responder, json_error
from microshop.gateway.upstream import (
    CannotConnect,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    Upstreams,
    UpstreamTimeout,
    exchange,
)
from microshop.platform.auth import InvalidToken, TokenVerifier
from microshop.platform.context import (
    accept_or_make_request_id,
    new_request_id,
    request_id_var,
    service_var,
)
from microshop.platform.errors import error_body
from microshop.platform.telemetry import ServiceTelemetry, server_span

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific fields.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway itself (the caller's own X-Forwarded-* chain is not passed on: the gateway
# is the edge), or answered by it (Expect: 100-continue).
_REQUEST_DROP = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"x-request-id",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
}
# Identity must come from the verified token alone; anything that looks like an identity header
# is dropped at the edge even though the services trust none of them.
_IDENTITY_PREFIXES = (b"x-user", b"x-auth", b"x-forwarded-user", b"x-remote-user", b"remote-user")
# The server sets Date, Server and the framing; the request id is the gateway's.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server", b"content-length", b"x-request-id"}
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# Upstream fields kept when a non-JSON error body is replaced by the gateway's JSON.
_KEPT_ON_ERROR = frozenset({b"retry-after", b"www-authenticate", b"allow", b"location"})
# Responses up to this size with a known length go back in one write; larger ones stream.
_BUFFER_LIMIT = 256 * 1024
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Sent again once if a pooled connection turns out closed (RFC 9110 §9.2.2), as is any request
# carrying an Idempotency-Key, whose service answers a repeat with the first result.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_PHRASES = {status.value: status.phrase for status in HTTPStatus}
# How `_Outgoing` treats a field it notes or drops (one dict lookup classifies a field).
_DROP, _HOST, _REQUEST_ID, _CONNECTION, _AUTHORIZATION, _IDEMPOTENCY_KEY = range(6)
_SPECIAL = dict.fromkeys(_REQUEST_DROP, _DROP) | {
    b"host": _HOST,
    b"x-request-id": _REQUEST_ID,
    b"connection": _CONNECTION,
    b"authorization": _AUTHORIZATION,
    b"idempotency-key": _IDEMPOTENCY_KEY,
}
# (An int: llhttp refuses an empty field name, so `name[0]` exists.)
_IDENTITY_FIRST = frozenset(prefix[0] for prefix in _IDENTITY_PREFIXES)
_METHOD_BYTES = {
    name: name.encode() for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}
_FORWARDED_PROTO = {
    scheme: b"\r\nx-forwarded-proto: " + scheme.encode() for scheme in ("http", "https")
}


def _is_json(headers: list[Header]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            media = value.partition(b";")[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class _Outgoing:
    """The caller's header fields as they go upstream, sorted out in one pass.

    Dropped: hop-by-hop fields (and those the Connection field names), fields the gateway sets
    itself, identity-looking fields. Noted on the way: what the gateway itself acts on.
    """

    __slots__ = ("authorization", "fields", "host", "idempotency_key", "request_id")

    def __init__(self, headers: list[Header]) -> None:
        self.authorization: bytes | None = None
        self.request_id: str | None = None
        self.host: bytes | None = None
        self.idempotency_key = False
        connection: bytes | None = None
        # Four pieces a field: "\r\n", name, ": ", value (joined once, with the whole head).
        fields: list[bytes] = []
        special = _SPECIAL
        for name, value in headers:
            kind = special.get(name)
            if kind is None:
                if name[0] in _IDENTITY_FIRST and name.startswith(_IDENTITY_PREFIXES):
                    continue
            elif kind == _AUTHORIZATION:
                self.authorization = value
            elif kind == _IDEMPOTENCY_KEY:
                self.idempotency_key = True
            else:
                if kind == _HOST:
                    self.host = value
                elif kind == _REQUEST_ID:
                    self.request_id = value.decode("latin-1")
                elif kind == _CONNECTION:
                    connection = value if connection is None else connection + b"," + value
                continue
            fields += (b"\r\n", name, b": ", value)
        if connection is not None:
            named = {token.strip().lower() for token in connection.split(b",")}
            fields = self._without(fields, named)
        self.fields = fields

    @staticmethod
    def _without(fields: list[bytes], names: set[bytes] | frozenset[bytes]) -> list[bytes]:
        kept: list[bytes] = []
        for i in range(0, len(fields), 4):
            if fields[i + 1] not in names:
                kept += fields[i : i + 4]
        return kept

    def replace_trace_context(self, carrier: dict[str, str]) -> None:
        """Tracing on: the gateway's span context replaces the caller's."""
        self.fields = self._without(self.fields, _TRACE_HEADERS)
        for key, value in carrier.items():
            self.fields += (b"\r\n", key.encode("latin-1"), b": ", value.encode("latin-1"))

    def head(self, request: Request, pool: UpstreamPool, request_id: bytes) -> bytes:
        method = request.method
        parts = [_METHOD_BYTES.get(method) or method.encode("ascii"), b" ", pool.base_path]
        if request.query:
            parts += (request.raw_path, b"?", request.query, pool.after_target)
        else:
            parts += (request.raw_path, pool.after_target)
        parts += self.fields
        # The client address and scheme are what the server resolved, honouring only its
        # trusted proxies.
        if request.client:
            parts += (b"\r\nx-forwarded-for: ", request.client[0].encode("latin-1"))
        scheme = request.scheme
        parts.append(
            _FORWARDED_PROTO.get(scheme) or b"\r\nx-forwarded-proto: " + scheme.encode("latin-1")
        )
        if self.host:
            parts += (b"\r\nx-forwarded-host: ", self.host)
        if request.body or method in _METHODS_WITH_BODY:
            end = b"\r\ncontent-length: %d\r\n\r\n" % len(request.body)
        else:
            end = b"\r\n\r\n"
        parts += (b"\r\nx-request-id: ", request_id, end)
        return b"".join(parts)


class Forwarder:
    """Forwards each /api/v1 request to the service owning its prefix.

    Everything the platform's ASGI middleware did for the old proxy happens here in line: the
    request id (accepted or made, forwarded, echoed), request metrics by route prefix, and,
    when tracing is on, a server span and a client span whose context goes upstream.
    """

    def __init__(
        self,
        routes: RouteTable,
        upstreams: Upstreams,
        tokens: TokenVerifier,
        telemetry: ServiceTelemetry,
        upstream_timeout_seconds: float,
    ) -> None:
        self.routes = routes
        self.upstreams = upstreams
        self.tokens = tokens
        self.telemetry = telemetry
        self.timeout = upstream_timeout_seconds
        self._service = telemetry.service
        self._decided = routes.decisions  # looked up here first: one call fewer a request

    async def __call__(self, request: Request, responder: Responder) -> None:
        started = time.perf_counter()
        outgoing = _Outgoing(request.headers)
        caller_id = outgoing.request_id
        request_id = new_request_id() if caller_id is None else accept_or_make_request_id(caller_id)
        # Left set once answered (a reset costs ~1,200 instructions): the next request in this
        # connection's task sets its own, and the app's middleware sets one for every other.
        request_id_var.set(request_id)
        # Each connection's requests are answered in one task, whose context keeps the
        # service from its first request on (nothing else in the gateway sets another).
        if service_var.get() is not self._service:
            service_var.set(self._service)
        method, path = request.method, request.path
        route, label, verdict = self._decided.get((method, path)) or self.routes.decide(
            method, path
        )
        status = 500
        try:
            tracer = self.telemetry.tracer
            if tracer is not None:
                status = await self._traced(
                    tracer, request, responder, route, verdict, outgoing, request_id
                )
            else:
                status = (
                    0
                    if verdict == PUBLIC
                    else self._refused(responder, verdict, outgoing, request_id)
                )
                if not status:
                    assert route is not None
                    status = await self._forward(request, responder, route, outgoing, request_id)
        finally:
            self.telemetry.metrics.observe_request(
                request.method, label, status, time.perf_counter() - started
            )

    def _refused(
        self, responder: Responder, verdict: str, outgoing: _Outgoing, request_id: str
    ) -> int:
        """Answer 404 or 401 at the edge; 0 when the request goes on to its service."""
        if verdict == NOT_FOUND:
            responder.send_json(404, "Not Found", request_id)
            return 404
        if verdict == TOKEN_NEEDED:
            try:
                self.tokens.verify_header(outgoing.authorization)
            except InvalidToken as exc:
                headers, body = json_error(
                    401, f"invalid or missing access token: {exc}", request_id
                )
                headers.append((b"www-authenticate", b"Bearer"))
                responder.send(401, headers, body)
                return 401
        return 0

    async def _traced(
        self,
        tracer: Tracer,
        request: Request,
        responder: Responder,
        route: Route | None,
        verdict: str,
        outgoing: _Outgoing,
        request_id: str,
    ) -> int:
        """The same, inside a server span and, upstream, a client span whose context is sent."""
        label = route.prefix if route is not None else "unmatched"
        with server_span(tracer, request.method, request.path, request.headers) as span:
            status = self._refused(responder, verdict, outgoing, request_id)
            if not status:
                assert route is not None
                with tracer.start_as_current_span(
                    f"{request.method} {route.service}",
                    kind=SpanKind.CLIENT,
                    attributes={
                        "http.request.method": request.method,
                        "server.address": route.service,
                    },
                ) as client:
                    carrier: dict[str, str] = {}
                    propagate.inject(carrier)
                    outgoing.replace_trace_context(carrier)
                    status = await self._forward(request, responder, route, outgoing, request_id)
                    client.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        client.set_status(Status(StatusCode.ERROR))
            span.update_name(f"{request.method} {label}")
            span.set_attribute("http.route", label)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        return status

    async def _forward(
        self,
        request: Request,
        responder: Responder,
        route: Route,
        outgoing: _Outgoing,
        request_id: str,
    ) -> int:
        pool = self.upstreams.pools[route.service]
        id_bytes = request_id.encode("latin-1")
        head = outgoing.head(request, pool, id_bytes)
        try:
            response = await exchange(
                pool,
                head,
                request.body,
                timeout=self.timeout,
                head_only=request.method == "HEAD",
                retry=outgoing.idempotency_key or request.method in IDEMPOTENT_METHODS,
            )
        except UpstreamError as exc:
            return self._failed(responder, route.service, request_id, exc)
        if response.complete and (response.status < 400 or _is_json(response.headers)):
            # take_body hands the connection back: nothing is left to discard.
            return self._reply(response, responder, id_bytes, response.take_body())
        try:
            return await self._relay(response, responder, route.service, request_id)
        finally:
            response.discard()  # a no-op once the body was read to its end

    def _response_headers(self, response: UpstreamResponse, request_id: bytes) -> list[Header]:
        drop = _RESPONSE_DROP | response.connection_named
        headers = [(name, value) for name, value in response.headers if name not in drop]
        headers.append((b"x-request-id", request_id))
        return headers

    def _reply(
        self, response: UpstreamResponse, responder: Responder, request_id: bytes, body: bytes
    ) -> int:
        """Send a response whose body is all here, in one write."""
        status = response.status
        if responder.request.method == "HEAD":
            # The upstream's length (or none) is the GET's, not this empty body's.
            responder.start(
                status, self._response_headers(response, request_id), response.content_length
            )
            responder.end()
            return status
        named = response.connection_named
        drop = _RESPONSE_DROP | named if named else _RESPONSE_DROP
        parts: list[bytes] = []
        for name, value in response.headers:
            if name not in drop:
                parts += (name, b": ", value, b"\r\n")
        parts += (b"x-request-id: ", request_id, b"\r\n")
        responder.send_parts(status, parts, body)
        return status

    async def _relay(
        self, response: UpstreamResponse, responder: Responder, service: str, request_id: str
    ) -> int:
        """The responses not complete on arrival: read to the end when small, else streamed."""
        if response.status >= 400 and not _is_json(response.headers):
            return await self._wrap_error(response, responder, service, request_id)
        length = response.content_length
        if length is not None and length <= _BUFFER_LIMIT:
            try:
                body = await response.read()
            except UpstreamError as exc:
                return self._failed(responder, service, request_id, exc)
            return self._reply(response, responder, request_id.encode("latin-1"), body)
        headers = self._response_headers(response, request_id.encode("latin-1"))
        responder.start(response.status, headers, length)
        try:
            async for chunk in response.stream():
                await responder.write(chunk)
        except UpstreamError as exc:
            # Too late for an error status: the caller sees the connection cut.
            log.warning("upstream %s failed mid-response (%s)", service, exc.reason)
            responder.abort()
            return 502
        responder.end()
        return response.status

    async def _wrap_error(
        self, response: UpstreamResponse, responder: Responder, service: str, request_id: str
    ) -> int:
        """An error whose body is not JSON (a server's plain text, a proxy's HTML page) is
        replaced by the gateway's JSON, keeping the status and what a client acts on."""
        status = response.status
        length = response.content_length
        if response.complete or (length is not None and length <= _BUFFER_LIMIT):
            with contextlib.suppress(UpstreamError):
                await response.read()  # and the connection is reused
        phrase = _PHRASES.get(status, "")
        detail = f"{service} answered {status} {phrase}".rstrip()
        body = json.dumps(error_body(detail, request_id)).encode()
        kept = [(name, value) for name, value in response.headers if name in _KEPT_ON_ERROR]
        kept += [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
        responder.send(status, kept, body)
        return status

    def _failed(
        self, responder: Responder, service: str, request_id: str, exc: UpstreamError
    ) -> int:
        status, detail = self._classify(service, exc)
        log.warning("upstream %s: %s (%s)", service, detail, exc.reason)
        responder.send_json(status, detail, request_id)
        return status

    def _classify(self, service: str, exc: UpstreamError) -> tuple[int, str]:
        """Map an upstream failure to the status the caller sees."""
        if isinstance(exc, CannotConnect):
            return 503, f"service unavailable: {service} (cannot connect)"
        if isinstance(exc, UpstreamTimeout):
            return 504, f"upstream timeout: {service} did not answer within {self.timeout:g}s"
        return 502, f"bad gateway: {service} sent an invalid or incomplete response"
