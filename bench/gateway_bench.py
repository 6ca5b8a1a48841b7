"""Gateway benchmark: an echo upstream served directly, through the gateway and through nginx.

Starts, as separate processes on loopback, an echo ASGI app under uvicorn, the gateway in front
of it exactly as a deployment runs it (`python -m microshop gateway`, configured by MICROSHOP_*
variables, every service URL pointing at the echo app; token checks, request ids and metrics
on, tracing off), and nginx (one worker, pooled keep-alive upstream connections) in front of
the same upstream when nginx is installed. wrk drives each target at each concurrency for a few
seconds, in interleaved rounds (a burst of other work on the shared machine then does not land
on one target only); each target's best round is kept, with the CPU time the gateway (or
nginx), the upstream and wrk itself spent per request in it, and the req/s those costs allow on
this machine's cores (the CPU budget table: which limit a row is at).

    .venv/bin/python -m bench.run gateway          # through make bench
    .venv/bin/python -m bench.gateway_bench --quick
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import Figure, Report, Table
from microshop.standalone import free_ports

ECHO_BODY = json.dumps({"sku": "sku-1", "name": "Mug", "price_cents": 1200}).encode()
TARGET_CONNECTIONS = 64
MIN_RATIO = 0.6
MAX_P99_RATIO = 3.0
CORES = os.cpu_count() or 2


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The upstream: drains the request, answers a small JSON document."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ECHO_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ECHO_BODY})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(echo_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


NGINX_CONF = """
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream echo {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}
}}
"""


@dataclass
class Run:
    target: str
    connections: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    gateway_us: float  # CPU per request of the process in the middle (gateway or nginx)
    upstream_us: float
    load: float = float("nan")  # the machine's 1-minute load average as the round began
    wrk_us: float = float("nan")  # the load generator's own CPU per request

    @property
    def machine_us(self) -> float:
        """CPU per request of every process on the path: wrk, the middle, the upstream."""
        middle = 0.0 if self.gateway_us != self.gateway_us else self.gateway_us  # nan: none
        return self.wrk_us + middle + self.upstream_us

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {seconds:g} s")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its children so far (nginx: its worker)."""
    if pid is None:
        return 0.0
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(child) for child in children]
    except OSError:
        pass
    ticks = os.sysconf("SC_CLK_TCK")
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str]) -> dict[str, Any]:
    """One wrk run; `wrk_cpu` is the CPU seconds wrk itself spent (user + system)."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped here
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", output)
    if total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return {
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) / (1000 if total.group(3) == "ms" else 1),
        "errors": errors,
        "p50_ms": latency_ms("50%"),
        "p99_ms": latency_ms("99%"),
        "wrk_cpu": wrk_cpu,
    }


def run(quick: bool = False) -> Report:
    """The Report for bench/run.py: every target at every concurrency."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (apt-get install wrk): it is the load generator")
    from microshop.platform.auth import Principal, TokenIssuer, generate_key_pair

    # 2 s a round: 10,000-60,000 requests at these rates, and the whole of make bench stays
    # within its 10 minutes on a slower host (3 s rounds took it to ~615 s on 2026-12-01).
    seconds = 2
    rounds = 1 if quick else 3
    concurrencies = [TARGET_CONNECTIONS] if quick else [16, TARGET_CONNECTIONS, 128]
    keys = generate_key_pair()
    token = TokenIssuer(keys.private_pem, ttl_seconds=3600).issue(Principal("bench", "b@x.io"))
    # All at once: asked for one by one, the kernel can hand out the same port twice.
    upstream_port, gateway_port, nginx_port = free_ports(3)
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")} | {
        "MICROSHOP_JWT_PUBLIC_KEY": keys.public_pem,
        "MICROSHOP_LOG_LEVEL": "WARNING",
        "MICROSHOP_PORT": str(gateway_port),
        "MICROSHOP_HOST": "127.0.0.1",
        **{
            f"MICROSHOP_{n}_URL": upstream for n in ("USERS", "ORDERS", "PAYMENTS", "NOTIFICATIONS")
        },
    }
    here = str(Path(__file__).resolve().parent.parent)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    notes: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    try:
        processes["upstream"] = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from bench.gateway_bench import serve_upstream as s; s({upstream_port})",
            ],
            env=env,
            cwd=here,
        )
        wait_ready(f"{upstream}/healthz", processes["upstream"])
        processes["gateway"] = subprocess.Popen(
            [sys.executable, "-m", "microshop", "gateway"], env=env, stderr=subprocess.DEVNULL
        )
        gateway = f"http://127.0.0.1:{gateway_port}"
        wait_ready(f"{gateway}/readyz", processes["gateway"])
        auth = {"Authorization": f"Bearer {token}"}
        targets: dict[str, tuple[str, dict[str, str], str | None]] = {
            "direct": (f"{upstream}/api/v1/orders", auth, None),
            "gateway, token checked": (f"{gateway}/api/v1/orders", auth, "gateway"),
            "gateway, public route": (f"{gateway}/api/v1/products", {}, "gateway"),
        }
        nginx = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
        )
        if nginx:
            (scratch / "nginx.conf").write_text(
                NGINX_CONF.format(dir=scratch, upstream=upstream_port, port=nginx_port)
            )
            processes["nginx"] = subprocess.Popen(
                [nginx, "-p", str(scratch), "-c", str(scratch / "nginx.conf"), "-g", "daemon off;"]
            )
            wait_ready(f"http://127.0.0.1:{nginx_port}/healthz", processes["nginx"])
            targets["nginx (1 worker)"] = (
                f"http://127.0.0.1:{nginx_port}/api/v1/orders",
                auth,
                "nginx",
            )
        else:
            notes.append("nginx row skipped: nginx is not installed (apt-get install nginx-light)")
        for url, headers, _ in targets.values():  # warm every path and pool
            wrk(url, TARGET_CONNECTIONS, 1, headers)
        runs: dict[tuple[str, int], list[Run]] = {}
        names = list(targets)
        for round_ in range(rounds):
            # Each round starts one target later: a target always measured right after
            # another one, or first, would carry whatever that position costs in every round.
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for connections in concurrencies:
                for name in order:
                    url, headers, middle = targets[name]
                    middle_pid = processes[middle].pid if middle else None
                    load = os.getloadavg()[0]
                    before = cpu_seconds(middle_pid), cpu_seconds(processes["upstream"].pid)
                    result = wrk(url, connections, seconds, headers)
                    after = cpu_seconds(middle_pid), cpu_seconds(processes["upstream"].pid)
                    n = max(result["requests"], 1)
                    wrk_us = result.pop("wrk_cpu") / n * 1e6
                    runs.setdefault((name, connections), []).append(
                        Run(
                            name,
                            connections,
                            gateway_us=(after[0] - before[0]) / n * 1e6 if middle else float("nan"),
                            upstream_us=(after[1] - before[1]) / n * 1e6,
                            load=load,
                            wrk_us=wrk_us,
                            **result,
                        )
                    )
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    best = {key: max(found, key=lambda r: r.rps) for key, found in runs.items()}
    loads = [r.load for found in runs.values() for r in found]
    notes.append(
        f"load average (1 min) during the rounds: {min(loads):.1f}-{max(loads):.1f}; "
        "req/s depends on it, and so do the CPU columns (a CPU second does less work on a "
        "busy machine); the instruction counts of bench/gateway_cpu.py --callgrind do not"
    )
    in_process = _in_process(quick)
    rounds_of = {
        f"{name} @ {connections}": [round(r.rps) for r in found]
        for (name, connections), found in runs.items()
    }
    return _report(
        best, list(targets), concurrencies, seconds, rounds, notes, in_process, rounds_of
    )


def _in_process(quick: bool) -> dict[str, Any]:
    """bench/gateway_cpu.py's CPU µs per request (client, gateway, upstream on one loop)."""
    command = [sys.executable, "-m", "bench.gateway_cpu", "--json"]
    command += ["--rounds", "3", "--requests", "2000"] if quick else []
    here = Path(__file__).resolve().parent.parent
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=here, timeout=600
    ).stdout
    return dict(json.loads(output.splitlines()[-1]))


def _report(
    best: dict[tuple[str, int], Run],
    targets: list[str],
    concurrencies: list[int],
    seconds: int,
    rounds: int,
    notes: list[str],
    in_process: dict[str, Any],
    rounds_of: dict[str, list[int]],
) -> Report:
    """`rounds_of`: every round's req/s, by target and concurrency (the spread says how far
    one round's figure can be trusted)."""
    direct = best[("direct", TARGET_CONNECTIONS)]
    rows = []
    for name in targets:
        r = best[(name, TARGET_CONNECTIONS)]
        rows.append(
            [
                name,
                round(r.rps),
                r.p50_ms,
                r.p99_ms,
                r.gateway_us,
                r.upstream_us,
                r.errors,
                f"{r.rps / direct.rps:.2f}",
                f"{r.p99_ms / direct.p99_ms:.1f}",
            ]
        )
    gateway = best[("gateway, token checked", TARGET_CONNECTIONS)]
    ratio, p99_ratio = gateway.rps / direct.rps, gateway.p99_ms / direct.p99_ms
    verdict = (
        # Three places: 0.599 printed as 0.60 beside "NOT met" read as a contradiction.
        f"target (token checked, {TARGET_CONNECTIONS} connections): throughput {ratio:.3f} of "
        f"direct (needs >= {MIN_RATIO}), p99 {p99_ratio:.1f}x direct's "
        f"(needs < {MAX_P99_RATIO:g}): "
        + ("met" if ratio >= MIN_RATIO and p99_ratio < MAX_P99_RATIO else "NOT met")
    )
    budget = []
    for name in targets:
        r = best[(name, TARGET_CONNECTIONS)]
        ceiling = _ceiling(r)
        budget.append(
            [
                name,
                r.wrk_us,
                r.gateway_us,
                r.upstream_us,
                r.machine_us,
                f"{r.rps * r.machine_us / 1e6:.2f}",
                round(ceiling),
                f"{ceiling / direct.rps:.2f}",
            ]
        )
    sweep = [
        [name, c, round(best[(name, c)].rps), best[(name, c)].p99_ms]
        for name in targets
        for c in concurrencies
    ]
    figure = Figure(
        title="Gateway vs direct vs nginx (echo upstream, wrk, loopback)",
        x_label="connections",
        panels=[("rps", "requests/s", False), ("p99_ms", "p99 latency (ms)", True)],
        points={
            name: [
                {"x": c, "rps": best[(name, c)].rps, "p99_ms": best[(name, c)].p99_ms}
                for c in concurrencies
            ]
            for name in targets
        },
    )
    return Report(
        name="gateway",
        title=f"Gateway: {TARGET_CONNECTIONS} connections, best of {rounds} x {seconds} s (wrk)",
        tables=[
            Table(
                f"{TARGET_CONNECTIONS} connections",
                [
                    "target",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "middle CPU us/req",
                    "upstream CPU us/req",
                    "errors",
                    "vs direct",
                    "p99 vs direct",
                ],
                rows,
            ),
            Table(
                f"CPU budget at {TARGET_CONNECTIONS} connections: what saturates the {CORES} "
                "cores (ceiling: no process past one core, all of them within the cores)",
                [
                    "target",
                    "wrk us/req",
                    "middle us/req",
                    "upstream us/req",
                    "all us/req",
                    "cores busy",
                    "ceiling req/s",
                    "ceiling vs direct",
                ],
                budget,
            ),
            Table("every concurrency", ["target", "connections", "req/s", "p99 ms"], sweep),
            Table(
                "in process, one loop (bench/gateway_cpu.py: CPU µs per request of "
                "client + gateway + upstream on one loop; the gateway's own = minus direct)",
                ["target", "CPU us/req", "gateway's own us/req"],
                [
                    [name, round(us, 1), round(us - per_request["direct"], 1)]
                    for per_request in [in_process["per_request"]]
                    for name, us in per_request.items()
                ],
            ),
        ],
        figure=figure,
        notes=[verdict, *notes],
        data={
            "runs": [
                asdict(r) | {"rps": r.rps, "machine_us": r.machine_us, "ceiling": _ceiling(r)}
                for r in best.values()
            ],
            "rounds": rounds_of,
            "ratio": ratio,
            "in_process": in_process,
        },
    )


def _ceiling(run: Run, cores: int = CORES) -> float:
    """The most req/s this round's CPU costs allow: each process (single-threaded) at most one
    core, wrk's two threads and every process together at most the machine's cores."""
    limits = [cores / run.machine_us * 1e6, 1 / run.upstream_us * 1e6]
    if run.gateway_us == run.gateway_us:  # not nan: there is a middle
        limits.append(1 / run.gateway_us * 1e6)
    return min(limits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    report = run(parser.parse_args().quick)
    print(report.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
