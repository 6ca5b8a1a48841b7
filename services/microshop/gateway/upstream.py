"""Pooled keep-alive HTTP/1.1 connections to the services; responses parsed by httptools."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

log = logging.getLogger(__name__)

# Received body bytes held for a slow caller before the upstream is asked to wait (pause_reading).
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
# A response whose status line and fields are longer than this is refused (502).
MAX_HEAD = 65536
# How often deadlines and idle connections are checked: the granularity of the timeouts.
SWEEP_SECONDS = 0.1


class UpstreamError(Exception):
    """An exchange with a service failed; `reason` is safe to log (no header, no body)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CannotConnect(UpstreamError):
    """No connection could be opened (refused, unreachable, or not accepted in time)."""


class UpstreamTimeout(UpstreamError):
    """The exchange did not finish within its deadline."""


class BadResponse(UpstreamError):
    """The service answered something that is not a valid HTTP/1.1 response."""


class ConnectionLost(UpstreamError):
    """The connection closed before the response was complete.

    `before_response` is true when not one byte of the response had arrived: the request may
    not have been read at all, which is what makes a retry of a repeatable request safe.
    """

    def __init__(self, reason: str, *, before_response: bool) -> None:
        super().__init__(reason)
        self.before_response = before_response


def _describe(exc: BaseException | None) -> str:
    # An OSError's text is its errno's message; nothing a caller sent is in it.
    if exc is None:
        return "closed by the service"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__


class UpstreamResponse:
    """One response as it arrives: status and headers first, then the body."""

    __slots__ = (
        "_chunks",
        "_connection",
        "_error",
        "_waiter",
        "buffered",
        "chunked",
        "complete",
        "connection_named",
        "content_length",
        "headers",
        "status",
    )

    def __init__(self, connection: UpstreamConnection) -> None:
        self._connection = connection
        self.status = 0
        # Field names lower-cased, values as sent.
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.chunked = False
        self.complete = False
        # Fields the Connection field names: hop-by-hop too (RFC 9110 §7.6.1).
        self.connection_named: frozenset[bytes] = frozenset()
        self.buffered = 0
        self._chunks: list[bytes] = []
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self._wake()

    def _next(self) -> asyncio.Future[None]:
        """What the next event (head, body bytes, end, failure) completes; raises a failure
        already known. Awaited by the caller itself: no coroutine frame of its own."""
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._connection.loop.create_future()
        return waiter

    async def wait_for_head(self) -> None:
        while not self.status:
            await self._next()
            if self._error is not None:
                raise self._error

    def take_body(self) -> bytes:
        """The body of a complete response; the connection goes back to its pool."""
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._connection.finished_reading(self)
        return body

    async def read(self) -> bytes:
        """The whole body (bounded by the caller: use it when the length is known and small)."""
        while not self.complete:
            await self._next()
            if self._error is not None:
                raise self._error
        return self.take_body()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in, holding back the service when the caller lags."""
        connection = self._connection
        while True:
            chunks, self._chunks = self._chunks, []
            for chunk in chunks:
                self.buffered -= len(chunk)
                connection.drained(self)
                yield chunk
            if self._chunks:
                continue  # more arrived while the caller took these
            if self.complete:
                connection.finished_reading(self)
                return
            await self._next()
            if self._error is not None:
                raise self._error

    def discard(self) -> None:
        """The caller wants no more of this response: the connection is not reused."""
        self._connection.finished_reading(self, discarded=True)


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to one service, carrying one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._head_only = False
        self._keep_alive = False
        self._head_bytes = 0
        self._reading_paused = False
        self._received = False
        # The pool's sweep fails the exchange once this has passed (one float per request is
        # cheaper than a timer per request).
        self.deadline: float | None = None

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = None
        response = self.response
        if response is not None and not response.complete:
            if response.status and response.content_length is None and not response.chunked:
                # A body delimited by the connection's end (RFC 9112 §6.3, rule 8).
                response.complete = True
                response._wake()
            else:
                response._fail(ConnectionLost(_describe(exc), before_response=not self._received))
        self.pool.forget(self)

    def data_received(self, data: bytes) -> None:
        self._received = True
        response = self.response
        if response is not None and not response.status:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(BadResponse(f"invalid response: {exc}"))
            return
        # Still no complete head: refused past the limit, with at most one read buffered more.
        if response is not None and not response.status and self._head_bytes > MAX_HEAD:
            self._broken(BadResponse("response head too large"))

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response.complete:
            # An answer no request asked for: what follows on this connection cannot be
            # matched to a request any more (response splitting), so it is not reused.
            self._broken(BadResponse("an answer arrived that no request asked for"))

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is None or response.status:
            return  # trailers of a chunked body are not passed on
        name = name.lower()
        response.headers.append((name, value))
        if name == b"content-length":
            response.content_length = int(value)
        elif name == b"transfer-encoding":
            response.chunked = value.rstrip().lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = {token.strip().lower() for token in value.split(b",")}
            response.connection_named = response.connection_named | tokens

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            self._broken(BadResponse("a response arrived with no request outstanding"))
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # Interim responses (100 Continue, 103 Early Hints) are not passed on.
            response.headers.clear()
            response.content_length = None
            response.chunked = False
            return
        response.status = status
        if self._head_only or status == 204 or status == 304:
            # No body follows, whatever the length fields say (RFC 9112 §6.3, rule 1); a HEAD
            # response's Content-Length is the GET's and is passed on as such.
            response.chunked = False
            self._complete(response)
            # llhttp cannot be told that a HEAD response has no body: it waits for the bytes
            # that Content-Length announces, so this connection is not reused.
            if self._head_only:
                self.close()
            return
        if response._waiter is not None:
            response._wake()

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is None or response.complete:
            return
        response._chunks.append(body)
        response.buffered += len(body)
        if response.buffered > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        if response._waiter is not None:
            response._wake()

    def on_message_complete(self) -> None:
        response = self.response
        if response is not None and response.status and not response.complete:
            # Asked now: llhttp forgets it once the message is complete.
            self._keep_alive = self.parser.should_keep_alive()
            response.complete = True  # as _complete, in line
            self.deadline = None
            if response._waiter is not None:
                response._wake()

    # --- the exchange -----------------------------------------------------------------------

    def _complete(self, response: UpstreamResponse) -> None:
        response.complete = True
        self.deadline = None
        if response._waiter is not None:
            response._wake()

    def _broken(self, error: UpstreamError) -> None:
        response = self.response
        if response is not None:
            response._fail(error)
        self.close()

    def expire(self) -> None:
        self.deadline = None
        self._broken(UpstreamTimeout("no complete response before the deadline"))

    def send(self, head: bytes, body: bytes, deadline: float, head_only: bool) -> UpstreamResponse:
        """Write one request; the response fills in as it arrives."""
        assert self.transport is not None and self.response is None
        response = self.response = UpstreamResponse(self)
        self._head_only = head_only
        self._received = False
        self._head_bytes = 0
        self._keep_alive = False
        self.deadline = deadline
        if not body:
            self.transport.write(head)
        elif len(body) < 16384:
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            self.transport.write(body)
        return response

    def drained(self, response: UpstreamResponse) -> None:
        if self._reading_paused and response.buffered < _LOW_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()

    def finished_reading(self, response: UpstreamResponse, discarded: bool = False) -> None:
        if self.response is not response:
            return
        self.response = None
        self.deadline = None
        if discarded or not response.complete or not self._keep_alive:
            self.close()
        else:
            self.pool.release(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.deadline = None
            if self.transport is not None:
                self.transport.close()
            self.pool.forget(self)


@dataclass(frozen=True)
class PoolSettings:
    connect_timeout_seconds: float
    keepalive_seconds: float
    max_connections: int


class ConnectionBudget:
    """How many upstream connections all pools together may hold open (one limit, shared)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def take(self) -> None:
        while self.open >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        self.open += 1

    def give_back(self) -> None:
        self.open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class UpstreamPool:
    """The idle keep-alive connections to one service (host and port of its base URL)."""

    def __init__(self, name: str, base_url: str, settings: PoolSettings, budget: ConnectionBudget):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the {name} service URL must be http://host[:port], not {base_url!r}")
        self.name = name
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc.rpartition("@")[2].encode("latin-1")
        self.base_path = parts.path.rstrip("/").encode("latin-1")
        # What follows the request target in every request head sent here.
        self.after_target = b" HTTP/1.1\r\nhost: " + self.netloc
        self.settings = settings
        self._budget = budget
        self._idle: collections.deque[UpstreamConnection] = collections.deque()
        self._counted: set[UpstreamConnection] = set()

    async def connect(self) -> UpstreamConnection:
        """A new connection, counted against the shared budget."""
        await self._budget.take()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
                self.settings.connect_timeout_seconds,
            )
        except TimeoutError:
            self._budget.give_back()
            raise CannotConnect("connect timed out") from None
        except OSError as exc:
            self._budget.give_back()
            raise CannotConnect(_describe(exc)) from None
        except BaseException:
            self._budget.give_back()
            raise
        if connection.closed:  # lost between connect and now
            self._budget.give_back()
            raise CannotConnect("closed by the service")
        self._counted.add(connection)
        return connection

    def take_idle(self, now: float) -> UpstreamConnection | None:
        """The most recently used idle connection that is fresh enough (at `now`, monotonic
        time), if any."""
        stale = now - self.settings.keepalive_seconds
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            if connection.idle_since < stale:
                # The service may be closing it right now (its own keep-alive is 5 s).
                connection.close()
                continue
            connection.reused = True
            return connection
        return None

    def release(self, connection: UpstreamConnection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def forget(self, connection: UpstreamConnection) -> None:
        if connection in self._counted:
            self._counted.discard(connection)
            self._budget.give_back()

    def sweep(self, now: float) -> None:
        """Fail exchanges past their deadline; close idle connections past their keep-alive."""
        for connection in [c for c in self._counted if c.deadline is not None]:
            if connection.deadline is not None and connection.deadline < now:
                connection.expire()
        stale = now - self.settings.keepalive_seconds
        while self._idle and (self._idle[0].closed or self._idle[0].idle_since < stale):
            self._idle.popleft().close()

    def close(self) -> None:
        for connection in list(self._counted):
            connection.close()
        self._idle.clear()


async def exchange(
    pool: UpstreamPool,
    head: bytes,
    body: bytes,
    *,
    timeout: float,
    head_only: bool,
    retry: bool,
) -> UpstreamResponse:
    """Send one request and wait for its response's status and headers.

    A pooled connection the service had already closed (its keep-alive ran out as the request
    left, or it was reset while the service was stopped) fails before any response byte; a
    repeatable request (`retry`) is then sent once more, on a new connection.
    """
    now = time.monotonic()
    deadline = now + timeout
    connection = pool.take_idle(now) or await _connect(pool, deadline)
    response = connection.send(head, body, deadline, head_only)
    try:
        # wait_for_head, in line: a frame fewer to cross on every resumption.
        while not response.status:
            await response._next()
            if response._error is not None:
                raise response._error
        return response
    except ConnectionLost as exc:
        if not (retry and connection.reused and exc.before_response):
            raise
    except BaseException:
        response.discard()
        raise
    log.info("upstream %s: pooled connection lost before the response; retrying", pool.name)
    connection = await _connect(pool, deadline)
    response = connection.send(head, body, deadline, head_only)
    try:
        await response.wait_for_head()
    except BaseException:
        response.discard()
        raise
    return response


async def _connect(pool: UpstreamPool, deadline: float) -> UpstreamConnection:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise UpstreamTimeout("no time left to connect")
    try:
        return await asyncio.wait_for(pool.connect(), remaining)
    except TimeoutError:
        raise UpstreamTimeout("no connection before the deadline") from None


class Upstreams:
    """The pools of every service behind the gateway, sharing one connection budget.

    Owned by one app: `start` and `close` are called from its lifespan, never at import time.
    """

    def __init__(self, base_urls: dict[str, str], settings: PoolSettings) -> None:
        self.settings = settings
        self.budget = ConnectionBudget(settings.max_connections)
        self.pools = {
            name: UpstreamPool(name, url, settings, self.budget) for name, url in base_urls.items()
        }
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for pool in self.pools.values():
                pool.sweep(now)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self.pools.values():
            pool.close()

    async def probe(self, name: str, path: bytes, timeout: float) -> int:
        """The status a service answers to GET `path` (raises UpstreamError)."""
        pool = self.pools[name]
        head = b"GET %s HTTP/1.1\r\nhost: %s\r\n\r\n" % (pool.base_path + path, pool.netloc)
        response = await exchange(pool, head, b"", timeout=timeout, head_only=False, retry=True)
        if response.content_length is not None and response.content_length <= 65536:
            await response.read()
        else:
            response.discard()
        return response.status
