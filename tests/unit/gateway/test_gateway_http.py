"""The gateway's own HTTP/1.1 server, driven with raw bytes: framing a smuggler cannot bend,
pipelined requests answered in order, keep-alive, limits and slow senders."""

from __future__ import annotations

import time

import httpx
import pytest

from microshop.gateway.server import ServerLimits

from .conftest import GatewayFactory, Upstreams
from .support import RawClient, ScriptedUpstream, Upstream


def _url(gateway: httpx.Client) -> str:
    return str(gateway.base_url).rstrip("/")


def _seen(upstreams: Upstreams) -> int:
    return sum(len(app.received) for app in upstreams.apps.values())


def _assert_json_refusal(raw: RawClient, status: int, words: str) -> None:
    response = raw.response()
    assert response.status == status
    assert response.header("content-type") == "application/json"
    assert response.header("connection") == "close"
    assert words in response.json()["detail"]
    assert response.json()["request_id"] == response.header("x-request-id")
    assert raw.closed()


SMUGGLING = {
    "content-length then transfer-encoding": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nContent-Length: 13\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/orders HTTP/1.1\r\nHost: g\r\n\r\n"
    ),
    "transfer-encoding then content-length": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 4\r\n\r\n5c\r\nGET /api/v1/orders HTTP/1.1\r\n\r\n0\r\n\r\n"
    ),
    "two content-lengths that differ": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\nContent-Length: 40\r\n"
        b"\r\nGET /api/v1/orders HTTP/1.1\r\nHost: g\r\n\r\n"
    ),
    "two equal content-lengths": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nContent-Length: 3\r\nContent-Length: 3\r\n"
        b"\r\nabc"
    ),
    "a content-length list": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nContent-Length: 3, 3\r\n\r\nabc"
    ),
    "chunked not last": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked, identity\r\n"
        b"\r\n0\r\n\r\n"
    ),
    "space before the colon": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
    ),
    "an obs-folded transfer-encoding": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nX: y\r\n Transfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\n"
    ),
    "bare LF line ends": b"GET /api/v1/products HTTP/1.1\nHost: g\n\n",
    "a bad chunk size": (
        b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabc\r\n0\r\n\r\n"
    ),
    "transfer-encoding in HTTP/1.0": (
        b"POST /api/v1/products HTTP/1.0\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("request_bytes", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_ambiguous_framing_is_refused_and_nothing_reaches_a_service(
    gateway: httpx.Client, upstreams: Upstreams, request_bytes: bytes
) -> None:
    before = _seen(upstreams)

    with RawClient(_url(gateway)) as raw:
        raw.send(request_bytes)
        _assert_json_refusal(raw, 400, "")

    assert _seen(upstreams) == before


def test_an_unknown_transfer_coding_is_501(gateway: httpx.Client) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(
            b"POST /api/v1/products HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"\r\n0\r\n\r\n"
        )
        _assert_json_refusal(raw, 501, "chunked")


def test_a_chunked_body_goes_upstream_whole_with_a_content_length_and_no_trailers(
    gateway: httpx.Client, upstreams: Upstreams
) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(
            b"POST /api/v1/users HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-User-Id: admin\r\nX-Trailer: t\r\n\r\n"
        )
        response = raw.response()

    seen = response.json()
    assert response.status == 200
    assert seen["body"] == "hello world"
    assert Upstream.header(seen, "content-length") == ["11"]
    names = {name for name, _ in seen["headers"]}
    assert not names & {"transfer-encoding", "x-user-id", "x-trailer"}


def test_a_body_ends_at_its_content_length_and_the_rest_is_the_next_request(
    gateway: httpx.Client,
) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(
            b"POST /api/v1/users HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\n\r\n"
            b"helloGET /api/v1/products/second HTTP/1.1\r\nHost: g\r\n\r\n"
        )
        first, second = raw.response(), raw.response()

    assert (first.json()["method"], first.json()["body"]) == ("POST", "hello")
    assert (second.json()["method"], second.json()["path"]) == ("GET", "/api/v1/products/second")


def test_pipelined_requests_are_answered_in_order(gateway: httpx.Client, token: str) -> None:
    auth = f"Authorization: Bearer {token}\r\n".encode()
    # The first is the slowest: answers must still come back in the order asked.
    requests = [
        b"GET /api/v1/orders/slow?sleep=0.3 HTTP/1.1\r\nHost: g\r\n" + auth + b"\r\n",
        b"GET /api/v1/users/me HTTP/1.1\r\nHost: g\r\n" + auth + b"\r\n",
        b"GET /api/v1/nowhere HTTP/1.1\r\nHost: g\r\n\r\n",
        b"GET /api/v1/payments HTTP/1.1\r\nHost: g\r\n" + auth + b"\r\n",
    ]
    with RawClient(_url(gateway)) as raw:
        raw.send(b"".join(requests))
        answers = [raw.response() for _ in requests]

    assert [a.status for a in answers] == [200, 200, 404, 200]
    assert [a.header("x-upstream") for a in answers] == ["orders", "users", None, "payments"]
    assert len({a.header("x-request-id") for a in answers}) == 4


def test_a_connection_is_kept_alive_and_closed_when_asked(gateway: httpx.Client) -> None:
    with RawClient(_url(gateway)) as raw:
        for _ in range(3):
            raw.send(b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\n\r\n")
            assert raw.response().header("connection") is None
        raw.send(b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
        last = raw.response()
        assert last.status == 200
        assert last.header("connection") == "close"
        assert raw.closed()


def test_http_1_0_closes_unless_keep_alive_is_asked(gateway: httpx.Client) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(b"GET /api/v1/products HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert raw.response().header("connection") == "keep-alive"
        raw.send(b"GET /api/v1/products HTTP/1.0\r\n\r\n")
        assert raw.response().status == 200
        assert raw.closed()


def test_head_answers_the_get_length_without_a_body_and_keeps_the_connection(
    start_gateway: GatewayFactory,
) -> None:
    # A HEAD answer announces the GET's length and carries no body; llhttp cannot be told so,
    # so the gateway must not wait for those 42 bytes.
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 42\r\n\r\n"
    upstream = ScriptedUpstream([head])
    gateway = start_gateway(orders_url=upstream.url)
    try:
        with RawClient(_url(gateway)) as raw:
            raw.send(b"HEAD /api/v1/products HTTP/1.1\r\nHost: g\r\n\r\n")
            answer = raw.response(head_only=True)
            raw.send(b"HEAD /api/v1/products HTTP/1.1\r\nHost: g\r\n\r\n")
            again = raw.response(head_only=True)
    finally:
        upstream.close()

    assert (answer.status, answer.header("content-length")) == (200, "42")
    assert (again.status, again.header("content-length")) == (200, "42")


def test_expect_100_continue_is_answered_before_the_body(gateway: httpx.Client) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(
            b"POST /api/v1/users HTTP/1.1\r\nHost: g\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert raw.response().status == 100
        raw.send(b"{}")
        response = raw.response()

    assert response.status == 200
    assert response.json()["body"] == "{}"
    assert Upstream.header(response.json(), "expect") == []


def test_an_absolute_form_target_is_routed_by_its_path(gateway: httpx.Client) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(b"GET http://shop.example/api/v1/products?q=1 HTTP/1.1\r\nHost: g\r\n\r\n")
        response = raw.response()

    assert response.json()["path"] == "/api/v1/products"
    assert response.json()["query_string"] == "q=1"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /api/v1/products HTTP/2.0\r\nHost: g\r\n\r\n", 505),
        (b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\nExpect: 200-ok\r\n\r\n", 417),
        (b"GET /api/v1/pro\x00ducts HTTP/1.1\r\nHost: g\r\n\r\n", 400),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
    ],
)
def test_requests_that_are_not_http_1_1_are_refused_as_json(
    gateway: httpx.Client, request_bytes: bytes, status: int
) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(request_bytes)
        _assert_json_refusal(raw, status, "")


def test_an_upgrade_is_not_followed_the_request_is_answered_then_closed(
    gateway: httpx.Client, upstreams: Upstreams
) -> None:
    with RawClient(_url(gateway)) as raw:
        raw.send(
            b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n\x81\x05hello"
        )
        response = raw.response()
        assert raw.closed()

    assert response.status == 200
    names = {name for name, _ in response.json()["headers"]}
    assert not names & {"upgrade", "connection"}


LIMITS = ServerLimits(
    max_url_bytes=1024,
    max_header_bytes=4096,
    max_header_field_bytes=512,
    max_body_bytes=1000,
    header_timeout_seconds=0.4,
    body_timeout_seconds=0.4,
    keepalive_timeout_seconds=0.6,
)


@pytest.fixture(scope="module")
def limited(start_gateway: GatewayFactory) -> str:
    return _url(start_gateway(server={"limits": LIMITS}))


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (b"GET /api/v1/products?q=" + b"x" * 1100 + b" HTTP/1.1\r\n\r\n", 414, "target"),
        (b"GET /api/v1/products HTTP/1.1\r\nX-Big: " + b"x" * 600 + b"\r\n\r\n", 431, "field"),
        (
            b"GET /api/v1/products HTTP/1.1\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"x" * 400) for i in range(12))
            + b"\r\n",
            431,
            "header",
        ),
        (b"POST /api/v1/products HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413, "body"),
        (
            b"POST /api/v1/products HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"200\r\n"
            + b"x" * 512
            + b"\r\n"
            + b"200\r\n"
            + b"x" * 512
            + b"\r\n0\r\n\r\n",
            413,
            "body",
        ),
    ],
    ids=["url", "one field", "all fields", "declared body", "chunked body"],
)
def test_limits_are_answered_as_json_and_the_connection_closed(
    limited: str, upstreams: Upstreams, request_bytes: bytes, status: int, words: str
) -> None:
    before = _seen(upstreams)

    with RawClient(limited) as raw:
        raw.send(request_bytes)
        _assert_json_refusal(raw, status, words)

    assert _seen(upstreams) == before


def test_an_endless_header_is_refused_before_it_ends(limited: str) -> None:
    with RawClient(limited) as raw:
        raw.send(b"GET /api/v1/products HTTP/1.1\r\nX-Endless: ")
        for _ in range(64):  # 64 KiB in 1 KiB pieces, 16 times the whole-head limit
            raw.send(b"x" * 1024)  # still accepted: the refusal is read, not reset away
        _assert_json_refusal(raw, 431, "header")


def test_a_declared_body_over_the_limit_is_refused_without_waiting_for_it(limited: str) -> None:
    started = time.monotonic()
    with RawClient(limited) as raw:
        raw.send(b"POST /api/v1/products HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n")
        _assert_json_refusal(raw, 413, "body")

    assert time.monotonic() - started < 0.3  # well before the 0.4 s body timeout


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\n",
        b"POST /api/v1/products HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
    ],
    ids=["head", "body"],
)
def test_a_slow_sender_gets_408_and_is_disconnected(limited: str, partial: bytes) -> None:
    with RawClient(limited) as raw:
        raw.send(partial)
        _assert_json_refusal(raw, 408, "in time")


def test_an_idle_keep_alive_connection_is_closed(limited: str) -> None:
    with RawClient(limited) as raw:
        raw.send(b"GET /api/v1/products HTTP/1.1\r\nHost: g\r\n\r\n")
        assert raw.response().status == 200
        started = time.monotonic()
        assert raw.closed(wait=3.0)

    assert 0.4 < time.monotonic() - started < 2.5
