"""A standalone shop in a background thread, and a TCP relay to cut in front of a service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from microshop.standalone import Ports, StandaloneShop
from tests.support.polling import wait_until


class ShopThread:
    """`StandaloneShop` on free ports, served from its own event loop in a daemon thread; `env`
    holds settings (MICROSHOP_…) its services read at start-up, as `make run` would."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.ports = Ports.free()
        self.url = f"http://127.0.0.1:{self.ports.gateway}"
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="browser-shop", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            shop = StandaloneShop(self.data_dir, self.ports)
            try:
                await shop.start()
            except BaseException as exc:
                self._failure = exc
                self._started.set()
                raise
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await shop.stop()

        with contextlib.suppress(BaseException):
            asyncio.run(main())

    def __enter__(self) -> ShopThread:
        # The services read their settings while starting; the process's own environment is
        # put back once they have.
        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            self._thread.start()
            started = self._started.wait(60)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        if not started:
            raise RuntimeError("the standalone shop did not start in 60 s")
        if self._failure is not None:
            raise RuntimeError("the standalone shop failed to start") from self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


class TcpRelay:
    """Forwards a loopback port to `target_port` until `cut()`: then the port refuses every
    connection and open ones are dropped, as when a service's pod is gone; `restore()` ends it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would not.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        wait_until(lambda: not self._accepts(), timeout=5, what="the relay to refuse connections")

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def close(self) -> None:
        self.cut()

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
