"""The gateway's side of each exchange with a service: pooled keep-alive connections, a lost
connection retried only when the request may be repeated, answers it cannot trust refused,
errors always JSON, and logs that never hold the caller's token."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from .conftest import GatewayFactory
from .support import ScriptedUpstream, Step, closed_port, http_response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def scripted() -> Iterator[list[ScriptedUpstream]]:
    made: list[ScriptedUpstream] = []
    yield made
    for upstream in made:
        upstream.close()


def upstream(scripted: list[ScriptedUpstream], *scripts: list[Step]) -> ScriptedUpstream:
    made = ScriptedUpstream(*scripts)
    scripted.append(made)
    return made


def test_sequential_requests_share_one_upstream_connection(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    orders = upstream(scripted, [http_response()])
    gateway = start_gateway(orders_url=orders.url)

    statuses = [gateway.get("/api/v1/products").status_code for _ in range(10)]

    assert statuses == [200] * 10
    assert orders.connections == 1
    assert len(orders.requests) == 10


def test_an_upstream_that_closes_after_each_answer_gets_a_new_connection_each_time(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    orders = upstream(scripted, [http_response(connection="close"), "close"])
    gateway = start_gateway(orders_url=orders.url)

    statuses = [gateway.get("/api/v1/products").status_code for _ in range(3)]

    assert statuses == [200] * 3
    assert orders.connections == 3


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize(
    ("method", "headers", "retried"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("POST", {"Idempotency-Key": "k-1"}, True),
        ("POST", {}, False),
    ],
    ids=["GET", "HEAD", "POST with a key", "POST without a key"],
)
def test_a_pooled_connection_lost_before_any_answer_is_retried_once_when_repeatable(
    start_gateway: GatewayFactory,
    scripted: list[ScriptedUpstream],
    token: str,
    how: str,
    method: str,
    headers: dict[str, str],
    retried: bool,
) -> None:
    # The first connection answers once, then dies on the next request (as a service that was
    # stopped and resumed does); every later connection answers.
    orders = upstream(scripted, [http_response(), how], [http_response()])
    gateway = start_gateway(orders_url=orders.url)
    assert gateway.get("/api/v1/orders", headers=bearer(token)).status_code == 200

    response = gateway.request(method, "/api/v1/orders", headers=bearer(token) | headers)

    if retried:
        assert response.status_code == 200
        assert orders.connections == 2
        assert len(orders.requests) == 3  # the first, the lost one, and its repeat
    else:
        assert response.status_code == 502
        assert "orders" in response.json()["detail"]
        assert orders.connections == 1
        assert len(orders.requests) == 2


def test_a_fresh_connection_lost_is_not_retried(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    orders = upstream(scripted, ["reset"])
    gateway = start_gateway(orders_url=orders.url)

    response = gateway.get("/api/v1/products")

    assert response.status_code == 502
    assert orders.connections == 1


def test_an_answer_lost_after_its_first_byte_is_not_retried(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"
    orders = upstream(scripted, [http_response(), (cut, "close")], [http_response()])
    gateway = start_gateway(orders_url=orders.url)
    assert gateway.get("/api/v1/products").status_code == 200

    response = gateway.get("/api/v1/products")

    assert response.status_code == 502
    assert orders.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 7\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\ncontent-length: 2\r\n\r\nok",
    ],
    ids=["length and chunked", "two lengths", "an answer nobody asked for", "obs-fold"],
)
def test_an_answer_with_ambiguous_framing_is_502_and_its_connection_dropped(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream], answer: bytes
) -> None:
    orders = upstream(scripted, [answer, http_response()], [http_response()])
    gateway = start_gateway(orders_url=orders.url)

    first = gateway.get("/api/v1/products")
    second = gateway.get("/api/v1/products")

    if first.status_code == 200:
        # The extra answer arrives after the first one was complete: it must poison nothing.
        assert first.content == b"ok"
    else:
        assert first.status_code == 502
    assert second.status_code == 200
    assert second.json() == {"ok": True}
    assert orders.connections == 2


def test_a_non_json_error_is_wrapped_as_json_with_the_request_id(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    page = b"<html><body>502 Bad Gateway</body></html>"
    answers = [
        http_response(b"Internal Server Error", 500, content_type="text/plain"),
        http_response(page, 503, content_type="text/html", retry_after="7"),
        http_response(b'{"detail": "no such order", "request_id": "r"}', 404),
        http_response(b"", 401, content_type="text/plain", www_authenticate="Bearer"),
    ]
    orders = upstream(scripted, answers)
    gateway = start_gateway(orders_url=orders.url)

    server_error, unavailable, not_found, unauthorized = (
        gateway.get("/api/v1/products") for _ in answers
    )

    assert server_error.status_code == 500
    assert server_error.json() == {
        "detail": "orders answered 500 Internal Server Error",
        "request_id": server_error.headers["x-request-id"],
    }
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "7"
    assert unavailable.json()["detail"] == "orders answered 503 Service Unavailable"
    assert not_found.json() == {"detail": "no such order", "request_id": "r"}  # JSON: as sent
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    assert unauthorized.json()["detail"] == "orders answered 401 Unauthorized"
    assert orders.connections == 1  # the bodies were read, the connection kept


def test_a_service_that_never_answers_is_504_and_a_late_answer_is_not_used(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    orders = upstream(scripted, ["hang"], [http_response()])
    gateway = start_gateway(orders_url=orders.url, upstream_timeout_seconds=0.3)

    slow = gateway.get("/api/v1/products")
    after = gateway.get("/api/v1/products")

    assert slow.status_code == 504
    assert "0.3s" in slow.json()["detail"]
    assert after.status_code == 200
    assert orders.connections == 2


FAILURES = {
    "garbage": lambda: upstream_of([b"garbage\r\n\r\n"]),
    "oversized head": lambda: upstream_of(
        [b"HTTP/1.1 200 OK\r\nx: " + b"y" * 300_000 + b"\r\n\r\n"]
    ),
    "truncated body": lambda: upstream_of(
        [(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nshort", "close")]
    ),
    "reset": lambda: upstream_of(["reset"]),
    "hang": lambda: upstream_of(["hang"]),
}


def upstream_of(script: list[Step]) -> ScriptedUpstream:
    return ScriptedUpstream(script)


@pytest.mark.parametrize("failure", [*FAILURES, "refused"])
def test_no_failure_puts_the_callers_token_in_a_log_line(
    start_gateway: GatewayFactory,
    token: str,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    made = FAILURES[failure]() if failure in FAILURES else None
    url = made.url if made else f"http://127.0.0.1:{closed_port()}"
    gateway = start_gateway(payments_url=url, upstream_timeout_seconds=0.3)
    caplog.set_level(logging.DEBUG)
    try:
        response = gateway.get(
            "/api/v1/payments", headers=bearer(token) | {"Cookie": "session=s3cr3t"}
        )
    finally:
        if made:
            made.close()

    assert response.status_code in (502, 503, 504)
    assert response.json()["request_id"] == response.headers["x-request-id"]
    lines = [record.getMessage() for record in caplog.records]
    lines += [record.exc_text or "" for record in caplog.records]
    assert any("payments" in line for line in lines)  # the failure is logged...
    signature = token.rsplit(".", 1)[1]
    assert not [line for line in lines if signature in line or "s3cr3t" in line]  # ...safely


def test_readyz_names_what_is_down_without_addresses_or_exception_texts(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    gateway = start_gateway(users_url=f"http://127.0.0.1:{port}")
    caplog.set_level(logging.WARNING)

    response = gateway.get("/readyz")

    assert response.status_code == 503
    assert response.json()["detail"] == "not ready: users"
    assert str(port) not in response.text and "127.0.0.1" not in response.text
    assert "Errno" not in response.text and "refused" not in response.text.lower()
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert f"127.0.0.1:{port}" in logged  # the operator still learns where and why


def test_a_slow_streamed_answer_reaches_the_caller_as_it_comes(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    chunks = b"".join(b"%x\r\n%s\r\n" % (100_000, b"z" * 100_000) for _ in range(5))
    streamed = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    orders = upstream(scripted, [streamed])
    gateway = start_gateway(orders_url=orders.url)

    with gateway.stream("GET", "/api/v1/products") as response:
        body = b"".join(response.iter_bytes())
        assert response.headers.get("transfer-encoding") == "chunked"

    assert body == b"z" * 500_000
    assert gateway.get("/api/v1/products").status_code == 200
    assert orders.connections == 1  # read to its end, the connection went back to the pool


def test_an_answer_cut_mid_stream_cuts_the_callers_connection(
    start_gateway: GatewayFactory, scripted: list[ScriptedUpstream]
) -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"z" * 300_000
    orders = upstream(scripted, [(cut, "close")])
    gateway = start_gateway(orders_url=orders.url)

    with pytest.raises(httpx.RemoteProtocolError):
        gateway.get("/api/v1/products")
