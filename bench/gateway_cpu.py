"""The gateway's own cost per request, measured so that the machine's load does not move it.

One process, one uvloop loop: a minimal client (K keep-alive connections, one request in flight
on each), the gateway exactly as `python -m microshop gateway` builds it (`create_app` +
`GatewayServer`: token check, request id, metrics; tracing off), and a minimal upstream
(httptools, a fixed JSON answer). Each target sends the same requests: `direct` (client to the
upstream), `token` (through the gateway, GET /api/v1/orders with a bearer token) and `public`
(GET /api/v1/products). Client and upstream do the same work in every target, so the gateway's
cost is the target's minus direct's.

Two measures:

- CPU µs per request (`time.process_time`, best of interleaved rounds): the gateway's CPU,
  kernel included, but inflated by cache and frequency effects on a busy machine;
- instructions per request under `valgrind --tool=callgrind` (`--callgrind`): counted, not
  timed, so the same on an idle or a saturated machine (user space only: the kernel's share,
  the syscalls, is not in it, which is what the CPU figure adds). Collection is switched on for
  the measured requests only, by callgrind's client requests through a 10-line C helper
  compiled on the spot (needs cc and valgrind's headers).

    .venv/bin/python -m bench.gateway_cpu                      # CPU µs, ~30 s
    .venv/bin/python -m bench.gateway_cpu --callgrind          # instructions, a few minutes
    .venv/bin/python -m bench.gateway_cpu --profile token      # cProfile of the gateway path
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httptools
import uvloop

ECHO_BODY = json.dumps({"sku": "sku-1", "name": "Mug", "price_cents": 1200}).encode()
UPSTREAM_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(ECHO_BODY), ECHO_BODY)
)
CONNECTIONS = 8
TARGETS = ("direct", "token", "public")


class _Parsed(asyncio.Protocol):
    """A connection whose bytes go to an httptools parser calling back on this object."""

    parser: Any
    transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)


class _Upstream(_Parsed):
    """Answers every request with the same bytes (what it costs is the same in every target)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)

    def on_message_complete(self) -> None:
        self.transport.write(UPSTREAM_ANSWER)


class _Client(_Parsed):
    """One keep-alive connection sending `request` again as soon as each answer is complete."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        run = self.run
        if self.parser.get_status_code() != 200:
            run.errors += 1
        run.done += 1
        if run.sent < run.total:
            run.sent += 1
            self.transport.write(run.request)
        elif run.done == run.total:
            run.finished.set_result(None)


class _Run:
    def __init__(self, request: bytes, total: int) -> None:
        self.request = request
        self.total = total
        self.sent = self.done = self.errors = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class Bench:
    """The three parties on one loop; `measure(target, n)` sends n requests through a target."""

    def __init__(self) -> None:
        self.clients: dict[str, list[_Client]] = {}

    async def start(self) -> None:
        from microshop.gateway.app import create_app
        from microshop.gateway.serve import GatewayServer
        from microshop.gateway.settings import GatewaySettings, upstream_settings
        from microshop.platform.auth import Principal, TokenIssuer, generate_key_pair
        from microshop.registry import BACKENDS

        loop = asyncio.get_running_loop()
        self.upstream = await loop.create_server(_Upstream, "127.0.0.1", 0)
        upstream_port = self.upstream.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{upstream_port}"
        keys = generate_key_pair()
        token = TokenIssuer(keys.private_pem, ttl_seconds=3600).issue(Principal("bench", "b@x.io"))
        settings = GatewaySettings(
            jwt_public_key=keys.public_pem,
            log_level="WARNING",
            host="127.0.0.1",
            port=0,
            # Generous: under valgrind on a busy machine, everything is 50-100 times slower.
            connect_timeout_seconds=120,
            upstream_timeout_seconds=300,
            keepalive_seconds=3600,
            **upstream_settings({service.name: url for service in BACKENDS}),
        )
        self.gateway = GatewayServer(create_app(settings))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await self.gateway.start(sock)
        gateway_port = self.gateway.port
        auth = b"authorization: Bearer " + token.encode() + b"\r\n"
        self.requests = {
            "direct": (upstream_port, b"/api/v1/orders", auth),
            "token": (gateway_port, b"/api/v1/orders", auth),
            "public": (gateway_port, b"/api/v1/products", b""),
        }

    async def _connect(self, target: str) -> list[_Client]:
        """The target's client connections, opened again where the server closed them (its
        keep-alive timeout runs out while other targets are measured, slowly under valgrind)."""
        loop = asyncio.get_running_loop()
        port = self.requests[target][0]
        clients = [c for c in self.clients.get(target, []) if not c.transport.is_closing()]
        while len(clients) < CONNECTIONS:
            _, client = await loop.create_connection(lambda: _Client(self._idle), "127.0.0.1", port)
            clients.append(client)
        self.clients[target] = clients
        return clients

    @property
    def _idle(self) -> _Run:
        return _Run(b"", 0)

    def request(self, target: str) -> bytes:
        _, path, extra = self.requests[target]
        return (
            b"GET " + path + b" HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: bench\r\n"
            b"accept: */*\r\n" + extra + b"\r\n"
        )

    async def measure(self, target: str, n: int) -> int:
        """Send n requests through `target`; the number answered with another status than 200."""
        run = _Run(self.request(target), n)
        clients = await self._connect(target)
        for client in clients:
            client.run = run
        for client in clients[: min(len(clients), n)]:
            run.sent += 1
            client.transport.write(run.request)
        await run.finished
        return run.errors

    async def stop(self) -> None:
        for clients in self.clients.values():
            for client in clients:
                client.transport.close()
        await self.gateway.stop()
        self.upstream.close()


def _cpu_rounds(requests: int, rounds: int) -> dict[str, float]:
    """µs of CPU per request for each target, best of interleaved rounds."""

    async def main() -> dict[str, float]:
        bench = Bench()
        await bench.start()
        try:
            for target in TARGETS:  # warm pools, caches, the token cache
                await bench.measure(target, 500)
            gc.collect()
            gc.freeze()
            best = dict.fromkeys(TARGETS, float("inf"))
            for _ in range(rounds):
                for target in TARGETS:
                    began = time.process_time()
                    errors = await bench.measure(target, requests)
                    spent = time.process_time() - began
                    if errors:
                        raise RuntimeError(f"{target}: {errors} answers were not 200")
                    best[target] = min(best[target], spent / requests * 1e6)
            return best
        finally:
            await bench.stop()

    return uvloop.run(main())


_HELPER = r"""
#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
void bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def _callgrind_child(requests: int, helper: str) -> None:
    """Runs under valgrind: one dump per target of exactly `requests` requests."""
    lib = ctypes.CDLL(helper)

    async def main() -> None:
        bench = Bench()
        await bench.start()
        try:
            for target in TARGETS:
                await bench.measure(target, 300)
            gc.collect()
            gc.freeze()
            for target in TARGETS:
                await bench.measure(target, 50)  # the code of this target translated again
                lib.bench_start()
                errors = await bench.measure(target, requests)
                lib.bench_dump(target.encode())
                lib.bench_stop()
                if errors:
                    raise RuntimeError(f"{target}: {errors} answers were not 200")
        finally:
            await bench.stop()

    uvloop.run(main())


def _callgrind(requests: int, keep: str | None = None) -> dict[str, float]:
    """Instructions per request of each target, counted by callgrind (`keep`: a folder to
    copy the dumps to, for callgrind_annotate)."""
    if not shutil.which("valgrind") or not shutil.which("cc"):
        raise RuntimeError("--callgrind needs valgrind and a C compiler (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as scratch:
        source, helper = Path(scratch, "helper.c"), Path(scratch, "helper.so")
        source.write_text(_HELPER)
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", helper, source], check=True)
        out = Path(scratch, "callgrind.out")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--collect-atstart=yes",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.gateway_cpu",
            "--child",
            helper.as_posix(),
            "--requests",
            str(requests),
        ]
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
        counts: dict[str, float] = {}
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for dump in Path(scratch).glob("callgrind.out.*"):
                shutil.copy(dump, keep)
        for dump in sorted(Path(scratch).glob("callgrind.out.*")):
            text = dump.read_text(errors="replace")
            label = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.MULTILINE)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
            if label and total and label.group(1) in TARGETS:
                counts[label.group(1)] = int(total.group(1)) / requests
        missing = set(TARGETS) - set(counts)
        if missing:
            raise RuntimeError(f"no callgrind dump for {', '.join(sorted(missing))}")
        return counts


def _profile(target: str, requests: int) -> None:
    import cProfile
    import pstats

    async def main() -> None:
        bench = Bench()
        await bench.start()
        try:
            await bench.measure(target, 500)
            profiler = cProfile.Profile()
            profiler.enable()
            await bench.measure(target, requests)
            profiler.disable()
        finally:
            await bench.stop()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(40)

    uvloop.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    parser.add_argument("--profile", choices=TARGETS, help="cProfile one target")
    parser.add_argument("--keep", metavar="DIR", help="with --callgrind: keep the dumps there")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("MICROSHOP_LOG_LEVEL", "WARNING")
    if args.child:
        _callgrind_child(args.requests, args.child)
        return 0
    if args.profile:
        _profile(args.profile, args.requests or 5000)
        return 0
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    if args.callgrind:
        figures, unit = _callgrind(args.requests or 2000, args.keep), "instructions/request"
    else:
        figures, unit = _cpu_rounds(args.requests or 4000, args.rounds), "CPU µs/request"
    if args.json:
        print(json.dumps({"unit": unit, "load": load, "per_request": figures}))
        return 0
    print(f"load average {load}; {CONNECTIONS} connections; {unit} (whole process)")
    for target in TARGETS:
        own = figures[target] - figures["direct"]
        extra = "" if target == "direct" else f"   gateway's own: {own:,.1f}"
        print(f"  {target:<7} {figures[target]:>12,.1f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
