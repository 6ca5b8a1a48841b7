"""Each of the five processes, as started in production, refuses an oversized request in JSON."""

from __future__ import annotations

import contextlib
import json
import socket

import pytest

from tests.support.shop import Shop

REQUESTS = {
    431: b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    414: b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
}


def answer(port: int, request: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # The server may answer and close before reading it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.sendall(request)
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("status", sorted(REQUESTS))
def test_every_process_refuses_an_oversized_request_in_json(shop: Shop, status: int) -> None:
    for name, service in shop.services.items():
        got, body = answer(service.port, REQUESTS[status])

        assert got == status, (name, body)
        assert set(body) == {"detail", "request_id"}, (name, body)
