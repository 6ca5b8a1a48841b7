"""The gateway's public HTTP/1.1 server: httptools (llhttp) parses, this enforces limits and order.

No ASGI cycle on the hot path: each request is parsed into a `Request` and handed to one
handler with a `Responder`. Framing is llhttp's and strict (Content-Length with
Transfer-Encoding, two Content-Lengths, bare LF, obs-fold are all refused); this module adds
what llhttp leaves to its user: size limits (414, 431, 413), slow senders (408), HTTP/1.0
with Transfer-Encoding and unknown transfer codings, pipelined requests answered in order,
keep-alive, write flow control and a graceful stop.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import httptools
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from microshop.platform.context import accept_or_make_request_id
from microshop.platform.errors import error_body
from microshop.platform.server import UNKNOWN_METHOD, ServerLimits, unknown_method

log = logging.getLogger(__name__)

Header = tuple[bytes, bytes]
__all__ = ["HttpServer", "Request", "Responder", "ServerLimits", "json_error"]


class Request:
    """One parsed request; the body is whole (the server buffers it under its limit)."""

    __slots__ = (
        "body",
        "client",
        "forwarded",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_path",
        "scheme",
    )

    def __init__(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: list[Header],
        body: bytes,
        http_version: str,
        keep_alive: bool,
        client: tuple[str, int] | None,
        scheme: str,
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        # Routing sees the path the services will route on, percent-decoded as ASGI does
        # (UTF-8, undecodable bytes replaced). Decoded first and searched as str: bytes' `in`
        # tries its operand as an integer first, and the TypeError it raises and clears costs
        # more than the decode.
        try:
            path = raw_path.decode()
        except UnicodeDecodeError:
            path = raw_path.decode("utf-8", "replace")
        if "%" in path:
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.client = client
        self.scheme = scheme
        # It carries X-Forwarded-For or -Proto (honoured from trusted proxies only).
        self.forwarded = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of a (lower-case) field name."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


Handler = Callable[[Request, "Responder"], Awaitable[None]]


class _Refusal(Exception):
    """A request refused while it is parsed; answered in order, then the connection closes."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# How long a connection closed after a refusal keeps reading (and dropping) what still arrives.
LINGER_SECONDS = 2.0
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})
# The fields on_headers_complete acts on (framing, Expect, forwarded client address/scheme).
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"expect"}) | _FORWARDED
_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
# Method names as str, without a decode per request (others are decoded).
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
}
_NO_BODY = frozenset({204, 304})


_STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, phrase) for status, phrase in _PHRASES.items()
}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def join_fields(headers: Iterable[Header]) -> bytes:
    """Header fields as they go on the wire: "name: value\r\n" each."""
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])


def json_error(status: int, detail: str, request_id: str) -> tuple[list[Header], bytes]:
    """The headers and body of a gateway error: JSON {"detail", "request_id"} (issue 11.5)."""
    body = json.dumps(error_body(detail, request_id)).encode()
    return [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())], body


class Responder:
    """How a handler answers its request: whole (`send`) or streamed (`start`, `write`, `end`)."""

    __slots__ = ("_chunked", "_connection", "_head_only", "finished", "request", "started")

    def __init__(self, connection: HttpConnection, request: Request) -> None:
        self._connection = connection
        self.request = request
        self._head_only = request.method == "HEAD"
        self._chunked = False
        self.started = False
        self.finished = False

    def _end(self) -> bytes:
        """The end of a response's head: the connection's fate, then the empty line."""
        connection = self._connection
        if connection.closing or not self.request.keep_alive:
            connection.closing = True
            return b"connection: close\r\n\r\n"
        if self.request.http_version == "1.0":
            return b"connection: keep-alive\r\n\r\n"
        return b"\r\n"

    def _head(self, status: int, fields: bytes, framing: bytes) -> list[bytes]:
        """The status line and fields of a response (`fields`: "name: value\r\n" each)."""
        end = self._end()
        return [status_line(status), self._connection.server.date_header, fields, framing, end]

    def send(self, status: int, headers: Iterable[Header], body: bytes = b"") -> None:
        """The whole response in one write; Content-Length is set here."""
        self.send_fields(status, join_fields(headers), body)

    def send_fields(self, status: int, fields: bytes, body: bytes = b"") -> None:
        """`send` with the fields already joined ("name: value\r\n" each)."""
        self.send_parts(status, [fields], body)

    def send_parts(self, status: int, parts: list[bytes], body: bytes = b"") -> None:
        """`send` with the fields as pieces that, joined, are "name: value\r\n" each: status
        line, fields and body are then joined once, into the one write."""
        assert not self.started, "the response has already started"
        self.started = self.finished = True
        connection = self._connection
        head = [_STATUS_LINES.get(status) or status_line(status), connection.server.date_header]
        head += parts
        if status in _NO_BODY:
            head.append(self._end())
        elif self._head_only:
            head += (b"content-length: %d\r\n" % len(body), self._end())
        else:
            head += (b"content-length: %d\r\n" % len(body), self._end(), body)
        transport = connection.transport
        if transport is not None and not connection.lost:
            transport.write(b"".join(head))

    def send_json(self, status: int, detail: str, request_id: str) -> None:
        headers, body = json_error(status, detail, request_id)
        self.send(status, headers, body)

    def start(self, status: int, headers: Iterable[Header], content_length: int | None) -> None:
        """Send the status and headers of a streamed response."""
        assert not self.started, "the response has already started"
        self.started = True
        if content_length is not None:
            framing = b"content-length: %d\r\n" % content_length
        elif status in _NO_BODY or self._head_only:
            framing = b""
        elif self.request.http_version == "1.1":
            self._chunked = True
            framing = b"transfer-encoding: chunked\r\n"
        else:
            # An HTTP/1.0 caller knows the end of an unsized body by the connection's close.
            self._connection.closing = True
            framing = b""
        self._connection.write(b"".join(self._head(status, join_fields(headers), framing)))

    async def write(self, chunk: bytes) -> None:
        """Send part of the body; waits while the caller is not reading."""
        if not chunk or self._head_only:
            return
        connection = self._connection
        if connection.lost:
            raise ConnectionResetError("the caller closed the connection")
        if self._chunked:
            connection.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            connection.write(chunk)
        await connection.drain()

    def end(self) -> None:
        if self._chunked and not self._head_only:
            self._connection.write(b"0\r\n\r\n")
        self.finished = True

    def abort(self) -> None:
        """Cut the connection: the only honest end of a response that cannot be completed."""
        self.finished = True
        self._connection.abort()


class HttpConnection(asyncio.Protocol):
    """One caller's connection: parses requests, queues them, answers them one at a time."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = server.loop
        self.limits = server.limits
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.closing = False
        self.lost = False
        # The sweep acts on these: close (or answer 408) once `deadline` has passed.
        self.deadline: float | None = None
        self.deadline_status: int | None = None
        self._queue: collections.deque[Request | _Refusal] = collections.deque()
        # One task per connection answers its requests in order; it waits for the next one
        # on `_wakeup` (cheaper than a task per request).
        self._worker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._busy = False
        self._reading_paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._refused = False
        # The message being parsed.
        self._in_head = False
        self._in_message = False
        self._completed = 0
        self._spilled = 0
        self._target = b""
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._forwarded = False
        self._version = "1.1"

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        self.server.connections.add(self)
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server.connections.discard(self)
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("the caller closed the connection"))
        if self._worker is not None and not self._worker.done():
            # Nobody will read the answer: stop the work (an upstream exchange is abandoned
            # and its connection closed, as nginx does when a client aborts).
            self._worker.cancel()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        # Whether this read starts inside a head, or at a message's first byte.
        continued, fresh = self._in_head, not self._in_message
        completed = self._completed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch is offered: what was parsed is answered, then the connection
            # closes (the bytes after the upgrade request are not HTTP/1.1).
            self.closing = True
            self._pause_reading()
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Refusal):
                log.error("request parsing failed", exc_info=cause)
                cause = _Refusal(400, "malformed request")
            self._refuse(cause)
            return
        except httptools.HttpParserError as exc:
            if unknown_method(exc, data):
                self._refuse(_Refusal(501, UNKNOWN_METHOD))
            else:
                self._refuse(_Refusal(400, f"malformed request: {exc}"))
            return
        if not self._in_head:
            return
        # The head is still not complete. When it began before this read, or with it, all of
        # this read is head; when it began after a pipelined message in the same read, only its
        # completed fields are known. Both are lower bounds, so no head under the limit is
        # refused, and what is buffered stays under the limit plus one read.
        if continued or (fresh and completed == self._completed):
            self._spilled += len(data)
        fields = sum(len(name) + len(value) + 4 for name, value in self._headers)
        size = max(self._spilled, fields + len(self._target))
        if any(len(n) + len(v) > self.limits.max_header_field_bytes for n, v in self._headers):
            self._refuse(_Refusal(431, "a request header field is too large"))
            return
        if size > self.limits.max_header_bytes:
            self._refuse(_Refusal(431, "request header fields too large"))

    def pause_writing(self) -> None:
        self._write_paused = True
        self.deadline = self.loop.time() + self.limits.write_timeout_seconds
        self.deadline_status = None

    def resume_writing(self) -> None:
        self._write_paused = False
        self.deadline = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = self._in_message = True
        self._spilled = 0
        self._target = b""
        self._headers = []
        self._forwarded = False  # (the body and its size are reset as a message completes)
        self.deadline = self.loop.time() + self.limits.header_timeout_seconds
        self.deadline_status = 408

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > self.limits.max_url_bytes:
            raise _Refusal(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Sizes are checked once the head is complete (and, for a head still arriving, after
        # each read in data_received): one append per field on the hot path.
        if self._in_head:  # trailer fields of a chunked body are dropped
            self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Asked once: httptools formats the string on every call.
        version = self._version = self.parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Refusal(505, f"HTTP/{version} is not supported")
        limits = self.limits
        field_limit = limits.max_header_field_bytes
        head_size = len(self._target)
        length = None
        expect_continue = False
        for name, value in self._headers:
            size = len(name) + len(value)
            if size > field_limit:
                raise _Refusal(431, "a request header field is too large")
            head_size += size + 4
            if name in _FRAMING:
                if name == b"content-length":
                    length = int(value)  # llhttp allows digits only, and one such field
                elif name == b"transfer-encoding":
                    if version == "1.0":
                        # RFC 9112 §6.1: framing faulty; refused rather than guessed.
                        raise _Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
                    if value.strip().lower() != b"chunked":
                        raise _Refusal(501, "only the chunked transfer coding is supported")
                elif name == b"expect":
                    if value.strip().lower() != b"100-continue":
                        raise _Refusal(417, "only 'Expect: 100-continue' is understood")
                    expect_continue = version == "1.1"
                else:
                    self._forwarded = True
        if head_size > limits.max_header_bytes:
            raise _Refusal(431, "request header fields too large")
        if length is not None and length > limits.max_body_bytes:
            raise _Refusal(413, "request body too large")
        if expect_continue and not self._busy and not self._queue:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.deadline = self.loop.time() + limits.body_timeout_seconds

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body_bytes:
            raise _Refusal(413, "request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        target = self._target
        path, _, query = target.partition(b"?")
        if path[:1] != b"/":
            path = self._origin_form(target)
        if query:
            query = query.partition(b"#")[0]
        method = self.parser.get_method()
        body = self._body
        if body:
            payload = body[0] if len(body) == 1 else b"".join(body)
            self._body = []
            self._body_size = 0
        else:
            payload = b""
        request = Request(
            _METHODS.get(method) or method.decode("ascii"),
            path,
            query,
            self._headers,
            payload,
            self._version,
            self.parser.should_keep_alive(),
            self.client,
            "http",
        )
        request.forwarded = self._forwarded
        self._in_message = False
        self._completed += 1
        self.deadline = None
        self._queue.append(request)
        if len(self._queue) >= self.limits.max_pipelined:
            self._pause_reading()
        self._schedule()

    def _origin_form(self, target: bytes) -> bytes:
        # absolute-form (RFC 9112 §3.2.2): the server must accept it; route on its path.
        if target == b"*":
            return b"*"
        try:
            parsed = httptools.parse_url(target)
        except httptools.HttpParserInvalidURLError:
            raise _Refusal(400, "malformed request target") from None
        return parsed.path or b"/"

    # --- answering --------------------------------------------------------------------------

    def _refuse(self, refusal: _Refusal) -> None:
        self._refused = True
        self._in_head = False
        self._pause_reading()
        self._queue.append(refusal)
        self._schedule()

    def _schedule(self) -> None:
        if self._busy:
            return
        self._busy = True
        if self._worker is None:
            self._worker = self.loop.create_task(self._work())
        elif self._wakeup is not None:
            waiter, self._wakeup = self._wakeup, None
            waiter.set_result(None)

    async def _work(self) -> None:
        """Answer what is queued, in order, then wait to be woken for more; return once the
        connection is to close. (One coroutine, not a loop calling another: each frame
        between the task and the upstream's future is crossed on every resumption.)"""
        handler = self.server.handler
        queue = self._queue
        try:
            while True:
                while queue and not self.lost:
                    item = queue.popleft()
                    if isinstance(item, _Refusal):
                        self._answer_refusal(item)
                        return
                    responder = Responder(self, item)
                    try:
                        if item.forwarded and self.server.proxies is not None:
                            await self.server.proxies.resolve(item)
                        await handler(item, responder)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("unhandled error answering %s", item.method)
                        if responder.started:
                            self.abort()
                            return
                        responder.send_json(500, "internal error", accept_or_make_request_id(None))
                    if not responder.finished:
                        log.error("the handler returned without finishing its response")
                        self.abort()
                        return
                    if self.closing:
                        self.close()
                        return
                    if self._reading_paused and len(queue) < self.limits.max_pipelined:
                        self._resume_reading()
                if self.lost:
                    return
                self._busy = False
                if self._in_message:
                    pass  # the next request's deadlines are already running
                elif self.server.stopping:
                    self.close()
                    return
                else:  # idle (as `_idle`, in line)
                    self.deadline = self.loop.time() + self.limits.keepalive_timeout_seconds
                    self.deadline_status = None
                self._wakeup = self.loop.create_future()
                await self._wakeup
        finally:
            self._worker = self._wakeup = None
            self._busy = False

    def _answer_refusal(self, refusal: _Refusal) -> None:
        self.closing = True
        headers, body = json_error(refusal.status, refusal.detail, accept_or_make_request_id(None))
        head = [status_line(refusal.status), self.server.date_header]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.write(b"".join(head) + body)
        self._linger()

    def _linger(self) -> None:
        """Close after a refusal so that the caller can read it: a close with unread bytes in
        the buffer makes the kernel send RST, which destroys the answer in flight. So the write
        side is shut (FIN) and what the caller still sends is read and dropped until it closes
        too, or for LINGER_SECONDS."""
        transport = self.transport
        if transport is None or self.lost:
            return
        if not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        self._resume_reading()
        self.deadline = self.loop.time() + LINGER_SECONDS
        self.deadline_status = None

    def eof_received(self) -> bool:
        return False  # the caller is done sending: close

    def _idle(self) -> None:
        self.deadline = self.loop.time() + self.limits.keepalive_timeout_seconds
        self.deadline_status = None

    def expire(self) -> None:
        """The sweep found the deadline passed: 408 to a slow sender, silence to an idle one."""
        self.deadline = None
        if self._write_paused:
            self.abort()
        elif self.deadline_status is not None and not self._refused:
            self._refuse(_Refusal(self.deadline_status, "request not received in time"))
        elif not self._busy:
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.lost:
            if self._drain is None:
                self._drain = self.loop.create_future()
            await self._drain

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.lost:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.lost:
            self._reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def stop_when_idle(self) -> None:
        """Graceful stop: close now if nothing is in progress, else after the current answer."""
        self.closing = True
        if not self._busy and not self._in_message:
            self.close()


class TrustedProxies:
    """The caller's address and scheme from X-Forwarded-For/-Proto, when the peer is a trusted
    proxy: uvicorn's own ProxyHeadersMiddleware decides, so FORWARDED_ALLOW_IPS means here what
    it means to uvicorn (addresses, networks, "*")."""

    def __init__(self, trusted: str) -> None:
        async def keep(scope: Scope, receive: Receive, send: Send) -> None:
            pass  # the middleware has rewritten `scope` in place

        self._middleware = ProxyHeadersMiddleware(keep, trusted_hosts=trusted)  # type: ignore[arg-type]

    async def resolve(self, request: Request) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "client": request.client,
            "scheme": request.scheme,
            "headers": request.headers,
        }
        await self._middleware(scope, None, None)  # type: ignore[arg-type]
        request.client = scope["client"]
        request.scheme = scope["scheme"]


class HttpServer:
    """Listens, owns the connections and the once-a-second sweep (deadlines, Date header)."""

    def __init__(
        self,
        handler: Handler,
        limits: ServerLimits | None = None,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or ServerLimits()
        # None: X-Forwarded-* is never honoured (the peer is the caller).
        self.proxies = TrustedProxies(forwarded_allow_ips) if forwarded_allow_ips else None
        self.connections: set[HttpConnection] = set()
        self.stopping = False
        self.date_header = b""
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "the server is not started"
        return self._loop

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose when started on port 0)."""
        assert self._server is not None, "the server is not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweep()
        if sock is not None:
            self._server = await self._loop.create_server(
                lambda: HttpConnection(self), sock=sock, backlog=2048
            )
        else:
            self._server = await self._loop.create_server(
                lambda: HttpConnection(self), host, port, backlog=2048, reuse_address=True
            )

    def _sweep(self) -> None:
        loop = self.loop
        date = formatdate(usegmt=True).encode()
        self.date_header = b"date: " + date + b"\r\nserver: microshop\r\n"
        now = loop.time()
        for connection in list(self.connections):
            if connection.deadline is not None and connection.deadline < now:
                connection.expire()
        self._sweeper = loop.call_later(1.0, self._sweep)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting; let answers in progress finish (up to the grace), then cut the rest."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.stop_when_idle()
        deadline = self.loop.time() + grace_seconds
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
