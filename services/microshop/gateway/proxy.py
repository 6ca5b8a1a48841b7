"""The /api/v1 reverse proxy: a plain ASGI app on one pooled aiohttp session, with edge auth."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

import aiohttp
import jwt
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from microshop.gateway.settings import GatewaySettings
from microshop.platform.auth import InvalidToken, TokenVerifier
from microshop.platform.context import request_id_var
from microshop.registry import API_PREFIX, BACKENDS

log = logging.getLogger(__name__)

# Path prefix -> the service that owns it, and the routes open without a token: the registry's.
ROUTES: tuple[tuple[str, str], ...] = tuple(
    (prefix, service.name) for service in BACKENDS for prefix in service.routes
)
_PUBLIC_EXACT = {
    (method, route.path)
    for service in BACKENDS
    for route in service.public
    if not route.subtree
    for method in route.methods
}
_PUBLIC_PREFIX = tuple(
    (route.methods, route.path) for service in BACKENDS for route in service.public if route.subtree
)

# RFC 9110 §7.6.1 connection-specific fields, plus fields the proxy sets itself.
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
_SET_BY_PROXY = frozenset(
    {
        b"host",
        b"content-length",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    }
)
# Identity must come from the verified token alone; anything that looks like an identity header
# is dropped at the edge even though the services trust none of them.
_IDENTITY_PREFIXES = (b"x-user", b"x-auth", b"x-forwarded-user", b"x-remote-user", b"remote-user")
# uvicorn adds its own Date and Server; passing the upstream's would send them twice.
_RESPONSE_DROP = _HOP_BY_HOP | {b"date", b"server"}
# Responses up to this size with a known length go back in one message; larger ones stream.
_BUFFER_LIMIT = 256 * 1024
_STREAM_CHUNK = 64 * 1024


def _under(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def service_for(path: str) -> str | None:
    """The service owning `path`, or None when no route matches."""
    for prefix, service in ROUTES:
        if _under(path, prefix):
            return service
    return None


def proxy_route(scope: Scope) -> str:
    """The route prefix a request went to, as its metrics label (raw paths hold ids)."""
    path: str = scope["path"]
    for prefix, _ in ROUTES:
        if _under(path, prefix):
            return prefix
    return "unmatched"


def is_public(method: str, path: str) -> bool:
    """True for the routes a caller may use without a bearer token."""
    path = path.rstrip("/") or "/"
    if (method, path) in _PUBLIC_EXACT:
        return True
    return any(method in methods and _under(path, prefix) for methods, prefix in _PUBLIC_PREFIX)


def _has_dot_segment(path: str) -> bool:
    # Routing and the public-route check must see the path the upstream will route on.
    return any(segment in (".", "..") for segment in path.split("/"))


class Upstreams:
    """The shared upstream connection pool and the base URL of each service.

    Owned by one app: `start` and `close` are called from its lifespan, never at import time.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.base_urls = {name: url.rstrip("/") for name, url in settings.upstreams().items()}
        self.timeout = aiohttp.ClientTimeout(
            total=settings.upstream_timeout_seconds,
            sock_connect=settings.connect_timeout_seconds,
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream session is not open (is the app's lifespan running?)")
        return self._session

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections,
            limit_per_host=0,
            keepalive_timeout=self.settings.keepalive_seconds,
            ttl_dns_cache=60,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            # Never keep one caller's cookies for the next caller.
            cookie_jar=aiohttp.DummyCookieJar(),
            # Bodies and encodings pass through untouched.
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def healthy(self, name: str) -> None:
        """Raise unless the service answers GET /healthz with 200 within the readiness budget."""
        timeout = aiohttp.ClientTimeout(total=self.settings.readiness_timeout_seconds)
        url = f"{self.base_urls[name]}/healthz"
        async with self.session.get(url, timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {url} answered {response.status}")


class VerifiedTokens:
    """Bearer tokens this gateway has verified, remembered until they expire.

    A client sends the same token with every request for its lifetime; checking its Ed25519
    signature once instead of every time takes the check off the hot path. The key is the whole
    header value, signature included, so only the exact bytes that verified are let through, and
    never past their `exp`.
    """

    def __init__(self, verifier: TokenVerifier, max_entries: int = 10_000) -> None:
        self._verifier = verifier
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}

    def check(self, authorization: str | None) -> None:
        """Return if the header carries a valid token; raise InvalidToken otherwise."""
        if authorization is not None:
            expires = self._expiry.get(authorization)
            if expires is not None:
                if time.time() < expires:
                    return
                del self._expiry[authorization]
        self._verifier.verify_header(authorization)
        assert authorization is not None  # verify_header refuses a missing header
        token = authorization.partition(" ")[2].strip()
        expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        if len(self._expiry) >= self._max_entries:
            self._expiry.pop(next(iter(self._expiry)))  # the oldest entry
        self._expiry[authorization] = expires


async def send_json(
    send: Send,
    status: int,
    body: object,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _upstream_headers(scope: Scope) -> list[tuple[str, str]]:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    # Fields named by the Connection header are hop-by-hop too.
    named: set[bytes] = set()
    host = b""
    for name, value in raw:
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
        elif name == b"host":
            host = value
    headers: list[tuple[str, str]] = []
    for name, value in raw:
        if (
            name in _HOP_BY_HOP
            or name in _SET_BY_PROXY
            or name in named
            or name.startswith(_IDENTITY_PREFIXES)
        ):
            continue
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
    # The gateway is the edge: a caller's own X-Forwarded-* chain is not passed on. The client
    # address and scheme are what uvicorn resolved, honouring only its trusted proxies.
    client = scope.get("client")
    if client:
        headers.append(("X-Forwarded-For", client[0]))
    headers.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    if host:
        headers.append(("X-Forwarded-Host", host.decode("latin-1")))
    request_id = request_id_var.get()
    if request_id:
        headers.append(("X-Request-ID", request_id))
    return headers


class ApiProxy:
    """ASGI app forwarding /api/v1 requests to the owning service.

    A plain ASGI app rather than a FastAPI route: no request object, no body parsing, no
    response model on the hot path. The platform's RequestIdMiddleware around it supplies
    X-Request-ID.
    """

    def __init__(
        self, upstreams: Upstreams, verifier: TokenVerifier, tracer: Tracer | None = None
    ) -> None:
        self.upstreams = upstreams
        self.tokens = VerifiedTokens(verifier)
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # websockets are not part of the API; the server closes them.
        path: str = scope["path"]
        method: str = scope["method"]
        service = service_for(path)
        if service is None or _has_dot_segment(path):
            await send_json(send, 404, {"detail": "Not Found"})
            return
        if not is_public(method, path):
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            try:
                self.tokens.check(authorization)
            except InvalidToken as exc:
                await send_json(
                    send,
                    401,
                    {"detail": f"invalid or missing access token: {exc}"},
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        try:
            body = await _read_body(receive, self.upstreams.settings.max_body_bytes)
        except _BodyTooLarge:
            await send_json(send, 413, {"detail": "request body too large"})
            return
        await self._forward(scope, send, service, method, body)

    async def _forward(
        self, scope: Scope, send: Send, service: str, method: str, body: bytes
    ) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = self.upstreams.base_urls[service] + raw_path.decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = _upstream_headers(scope)
        if self.tracer is None:
            # Tracing off: the caller's own trace headers, if any, pass through untouched.
            await self._exchange(send, service, method, target, headers, body)
            return
        with self.tracer.start_as_current_span(
            f"{method} {service}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": method, "server.address": service},
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers = [(k, v) for k, v in headers if k.lower() not in carrier]
            headers.extend(carrier.items())
            status = await self._exchange(send, service, method, target, headers, body)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))

    async def _exchange(
        self,
        send: Send,
        service: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> int:
        """Send the request upstream and its answer back; the status the caller got."""
        started = False
        try:
            async with self.upstreams.session.request(
                method,
                URL(target, encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as response:
                response_headers = [
                    (name.lower(), value)
                    for name, value in response.raw_headers
                    if name.lower() not in _RESPONSE_DROP
                ]
                length = response.content_length
                if method == "HEAD" or (length is not None and length <= _BUFFER_LIMIT):
                    payload = await response.read()
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status,
                            "headers": response_headers,
                        }
                    )
                    started = True
                    await send({"type": "http.response.body", "body": payload})
                    return response.status
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": response_headers,
                    }
                )
                started = True
                async for chunk in response.content.iter_chunked(_STREAM_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            if started:
                # Too late for an error status; the server closes the connection.
                log.warning("upstream %s failed mid-response: %r", service, exc)
                return 502
            status, detail = _classify(service, exc, self.upstreams.settings)
            log.warning("upstream %s: %s (%r)", service, detail, exc)
            await send_json(send, status, {"detail": detail})
            return status


class ApiDispatch:
    """ASGI middleware sending /api/v1 requests to the proxy ahead of FastAPI's own stack.

    Measured in-process: reaching the proxy through FastAPI's middleware, router and a Mount
    costs ~60 us a request, this ~30 us. Everything else (health, docs) goes on to FastAPI.
    """

    def __init__(self, app: ASGIApp, api: ASGIApp) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _under(scope["path"], API_PREFIX):
            await self.api(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _classify(service: str, exc: BaseException, settings: GatewaySettings) -> tuple[int, str]:
    """Map an upstream failure to the status the caller sees."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
        return 503, f"service unavailable: {service} (cannot connect)"
    if isinstance(exc, TimeoutError):
        return (
            504,
            f"upstream timeout: {service} did not answer within "
            f"{settings.upstream_timeout_seconds:g}s",
        )
    return 502, f"bad gateway: {service} sent an invalid or incomplete response"
