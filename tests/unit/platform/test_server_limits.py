"""The HTTP server's limits: oversized, deep or slow requests get a JSON refusal at once."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from microshop.platform.auth import generate_key_pair
from microshop.platform.server import json_depth_exceeds, server_config
from microshop.users.app import create_app
from microshop.users.settings import UsersSettings
from tests.support.polling import wait_until


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, object]
    sent: int  # bytes the client sent before the server's answer was there to read


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The users app (SQLite) under the platform's server, with short timeouts."""
    keys = generate_key_pair()
    data: Path = tmp_path_factory.mktemp("limits")
    settings = UsersSettings(
        host="127.0.0.1",
        port=0,
        database_url=f"sqlite:///{data}/users.db",
        jwt_private_key=keys.private_pem,
        jwt_public_key=keys.public_pem,
        header_timeout_seconds=0.5,
        body_timeout_seconds=0.5,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = server_config(create_app(settings), settings, lifespan="on", log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: running.started, timeout=20, what="the server")
    yield sock.getsockname()
    running.should_exit = True
    thread.join(10)
    sock.close()


def exchange(address: tuple[str, int], *parts: bytes, pause: float = 0.0) -> Answer:
    """Send the parts (stopping when the server has answered and closed), read the answer."""
    sent = 0
    with socket.create_connection(address, timeout=10) as conn:
        try:
            for part in parts:
                for start in range(0, len(part), 65536):
                    if select.select([conn], [], [], 0)[0]:
                        raise BrokenPipeError  # the server has answered: stop sending
                    sent += conn.send(part[start : start + 65536])
                if pause:
                    time.sleep(pause)  # a slow sender is the behaviour under test
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        try:
            while chunk := conn.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return Answer(int(status_line.split()[1]), headers, json.loads(body), sent)


def refused(answer: Answer, status: int, words: str) -> None:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert words in str(answer.body["detail"]), answer.body
    assert answer.body["request_id"] == answer.headers["x-request-id"]


def test_a_64_mb_header_is_refused_without_reading_it(server: tuple[str, int]) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: big-head-1\r\nX-Big: "
    answer = exchange(server, head, b"a" * 64 * 1024 * 1024)

    refused(answer, 431, "request head is over 32768 bytes")
    assert answer.body["request_id"] == "big-head-1"
    assert answer.sent < 4 * 1024 * 1024  # the server answered and closed long before the end


def test_one_field_over_its_limit_is_refused_by_name(server: tuple[str, int]) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 9000 + b"\r\n\r\n"

    refused(exchange(server, head), 431, "header field 'cookie' is over 8192 bytes")


def test_a_head_of_many_small_fields_over_the_total_is_refused(server: tuple[str, int]) -> None:
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 4000) for n in range(10))

    answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")

    refused(answer, 431, "request head is over 32768 bytes")


def test_a_long_url_is_414(server: tuple[str, int]) -> None:
    answer = exchange(server, b"GET /healthz?q=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    refused(answer, 414, "URL is over 8192 bytes")


def test_a_body_announced_too_large_is_413_before_it_is_sent(server: tuple[str, int]) -> None:
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000000\r\n\r\n"
    )

    refused(exchange(server, head), 413, "body is over 1048576 bytes")


def test_a_chunked_body_growing_too_large_is_413(server: tuple[str, int]) -> None:
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)

    refused(exchange(server, head, chunk * 20, b"0\r\n\r\n"), 413, "body is over 1048576 bytes")


@pytest.mark.parametrize(("depth", "status"), [(32, 422), (33, 400), (100_000, 400)])
def test_json_nested_deeper_than_the_limit_is_400(
    server: tuple[str, int], depth: int, status: int
) -> None:
    body = b"[" * depth + b"]" * depth
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    answer = exchange(server, head + body)

    assert answer.status == status, answer
    if status == 400:
        refused(answer, 400, "JSON body nests deeper than 32")


def test_the_depth_of_brackets_inside_strings_does_not_count() -> None:
    text = json.dumps({"name": "[" * 100 + '\\"{' * 50, "list": [[[1]]]}).encode()

    assert not json_depth_exceeds(text, 4)  # the object, then three lists
    assert json_depth_exceeds(text, 3)


def test_a_head_sent_slowly_times_out_with_408(server: tuple[str, int]) -> None:
    refused(exchange(server, b"GET /healthz HTTP/1.1\r\nHo", pause=1.0), 408, "head did not arrive")


def test_a_connection_that_sends_nothing_times_out_with_408(server: tuple[str, int]) -> None:
    refused(exchange(server), 408, "head did not arrive in time")


def test_a_body_sent_slowly_times_out_with_408(server: tuple[str, int]) -> None:
    head = (
        b"POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )

    refused(exchange(server, head, b'{"email"', pause=1.0), 408, "body did not arrive in time")


def test_what_is_not_http_is_a_json_400(server: tuple[str, int]) -> None:
    refused(exchange(server, b"\x00\x01 hello\r\n\r\n"), 400, "not valid HTTP/1.1")


def test_a_request_within_every_limit_is_served(server: tuple[str, int]) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: " + b"v" * 8000
    answer = exchange(server, head + b"\r\n\r\n")

    assert answer.status == 200
    assert answer.body == {"status": "ok"}
