"""Servers for the gateway tests: uvicorn in a thread, echo upstreams, raw TCP misbehaviour."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from microshop.registry import BACKENDS

SERVICES = tuple(service.name for service in BACKENDS)


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port() -> int:
    """A local port with nothing listening on it (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """An ASGI app under uvicorn on a free loopback port, in a background thread."""

    def __init__(
        self, app: ASGIApp, lifespan: Literal["auto", "on", "off"] = "on", **options: Any
    ) -> None:
        self.sock = bound_socket()
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan=lifespan, access_log=False, **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@dataclass
class Upstream:
    """One echo service: answers with what it received and records it."""

    name: str
    received: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        seen = {
            "service": self.name,
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode(),
            "query_string": scope["query_string"].decode(),
            "body": body.decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        }
        self.received.append(seen)
        path = scope["path"]
        if path.endswith("/slow"):
            await asyncio.sleep(float(query.get("sleep", "5")))
        if path.endswith("/stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            chunk = b"x" * 100_000
            for _ in range(10):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        payload = json.dumps(seen).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"x-upstream", self.name.encode()),
            (b"connection", b"keep-alive"),
        ]
        if path.endswith("/cookie"):
            headers.append((b"set-cookie", b"session=secret; Path=/"))
        status = int(query.get("status", "200"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def last(self) -> dict[str, Any]:
        return self.received[-1]

    @staticmethod
    def header(seen: dict[str, Any], name: str) -> list[str]:
        return [v for k, v in seen["headers"] if k == name.lower()]


@dataclass
class Upstreams:
    apps: dict[str, Upstream]
    urls: dict[str, str]


class RawServer:
    """A TCP server that answers every connection with fixed bytes and closes it."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = bound_socket()
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()
