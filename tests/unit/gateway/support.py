"""Servers for the gateway tests: uvicorn in a thread, echo upstreams, raw TCP misbehaviour."""

from __future__ import annotations

import asyncio
import contextlib
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


class GatewayThread:
    """A gateway app on its own server (gateway/serve.py) and loop, in a background thread."""

    def __init__(self, app: Any, **options: Any) -> None:
        from microshop.gateway.serve import GatewayServer

        self.sock = bound_socket()
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = GatewayServer(app, **options)
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve(self.sock))
        except BaseException as exc:
            self.failed = exc

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"gateway did not start: {self.failed!r}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
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


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """One TCP connection to a server, writing exactly the bytes a test gives it.

    Responses are read with the standard library's header parser; bodies by Content-Length,
    chunked coding or the connection's end. `closed()` tells whether the server hung up.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, head_only: bool = False) -> RawResponse:
        import http.client

        line = self.file.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        version, status, *_ = line.decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1", line
        fields = http.client.parse_headers(self.file)  # type: ignore[arg-type]
        headers = [(k, v) for k, v in fields.items()]
        code = int(status)
        if head_only or code in (204, 304) or 100 <= code < 200:
            return RawResponse(code, headers, b"")
        length = fields.get("content-length")
        if length is not None:
            return RawResponse(code, headers, self.file.read(int(length)))
        if (fields.get("transfer-encoding") or "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.file.readline().split(b";")[0], 16)
                chunk = self.file.read(size + 2)[:size]
                if size == 0:
                    break
                body += chunk
            return RawResponse(code, headers, body)
        return RawResponse(code, headers, self.file.read())

    def closed(self, wait: float = 2.0) -> bool:
        """True once the server has closed its side (EOF within `wait` seconds)."""
        self.sock.settimeout(wait)
        try:
            return self.file.read(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_response(body: bytes = b'{"ok": true}', status: int = 200, **headers: str) -> bytes:
    fields = {"content-type": "application/json", "content-length": str(len(body))}
    fields |= {k.replace("_", "-"): v for k, v in headers.items()}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode() + b"\r\n" + body


Step = bytes | str | tuple[bytes, str]


class ScriptedUpstream:
    """A TCP upstream that plays a script per connection, one step per request it reads.

    A step is bytes to answer with (the connection stays open), or one of: "close" (close
    without answering), "reset" (an RST, without answering), "hang" (read, never answer), or
    a tuple of bytes and one of those (answer, then act).
    The last step repeats. `connections` counts accepted connections, `requests` what was read.
    """

    def __init__(self, *scripts: list[Step]) -> None:
        self.scripts = list(scripts) or [[http_response()]]
        self.connections = 0
        self.requests: list[bytes] = []
        self.sock = bound_socket()
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            script = self.scripts[min(self.connections, len(self.scripts) - 1)]
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._play, args=(conn, script), daemon=True).start()

    def _play(self, conn: socket.socket, script: list[Step]) -> None:
        buffer = b""
        step = 0
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                action = script[min(step, len(script) - 1)]
                step += 1
                if isinstance(action, tuple):
                    conn.sendall(action[0])
                    action = action[1]
                if action == "close":
                    conn.close()
                    return
                if action == "reset":
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    conn.close()
                    return
                if action == "hang":
                    time.sleep(30)
                    return
                assert isinstance(action, bytes)
                conn.sendall(action)
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()
