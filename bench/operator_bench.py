"""Operator benchmark: N Shops against the API emulator, next to a plain client's same writes.

For each N (1, 10, 100; 500 by hand) a fresh emulator (tests/operator/emulator, served over HTTPS
in a thread of this process, with its controllers making pods Ready) gets N namespaces and then:

- operator: the real operator (`kopf run` of microshop_operator.main, a subprocess with the
  chart's ServiceAccount and RBAC, default settings) is started; N minimal Shops are created at
  once; the clock stops when every Shop says Ready=True. Then, at the largest N, once the
  operator has been quiet for 2 s, a steady-state window with nothing changing counts what it
  still sends.
- plain client: on another fresh emulator with the same Shops, a subprocess with the same
  ServiceAccount does only the writes a Shop needs, once, with no framework: the generated
  Secrets, every child by server-side apply and one status patch per Shop; the clock stops
  when every workload is Ready.

Requests are counted by the emulator per user (so only the operator's or the client's own);
CPU seconds and peak RSS (VmHWM) are read from /proc of the subprocess.

    .venv/bin/python -m bench.run operator           # as make bench runs it: 1, 10, 100
    .venv/bin/python -m bench.operator_bench --shops 1 10 100 500 --steady 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import Figure, Report, Table
from microshop.standalone import free_ports
from tests.support.kopf import kopf_run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "operator"))  # the emulator and its HTTPS front

CRD = ROOT / "crds" / "shop.yaml"
SHOP_RESOURCE = ("microshop.dev", "v1alpha1", "shops")
WORKLOADS = (("apps", "v1", "deployments"), ("apps", "v1", "statefulsets"))
# make bench's sizes: 500 Shops take the emulator several minutes (its own CPU: one Python
# process serving every request and running every controller), which would break make bench's
# 10 minutes, so 500 is measured by hand: `python -m bench.operator_bench --shops 500`.
SIZES = (1, 10, 100)
QUICK_SIZES = (1, 10)
STEADY_SECONDS = 30.0
QUICK_STEADY_SECONDS = 10.0
READY_TIMEOUT = 600.0
QUIET_SECONDS = 2.0  # nothing sent for this long: the Ready transition is over
STOP_SECONDS = 3.0
MAX_RSS_MIB = 300.0
MAX_IDLE_RATE = 0.05  # requests per second per idle Shop
WRITE_VERBS = {"create", "update", "patch", "delete"}


@dataclass
class Run:
    who: str  # "operator" or "plain client"
    shops: int
    seconds: float
    requests: int
    writes: int
    cpu_seconds: float
    peak_rss_mib: float
    steady_seconds: float = float("nan")
    steady_requests: int = 0
    steady_writes: int = 0
    steady_cpu_seconds: float = float("nan")

    @property
    def per_shop(self) -> float:
        return self.requests / self.shops

    @property
    def idle_rate(self) -> float:
        """Requests per second per Shop in the steady-state window."""
        return self.steady_requests / self.steady_seconds / self.shops


# -- the emulator -------------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(directory: Path, shops: int) -> Iterator[Any]:
    """A fresh emulator with the Shop CRD and the chart's RBAC, and `shops` empty namespaces."""
    import yaml
    from apiserver import RunningApi

    with RunningApi(directory) as api:
        with api.client() as admin:
            admin.post(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                json=yaml.safe_load(CRD.read_text()),
            ).raise_for_status()
            for i in range(shops):
                admin.post(
                    "/api/v1/namespaces", json={"metadata": {"name": namespace(i)}}
                ).raise_for_status()
        api.operator_kubeconfig  # noqa: B018  (installs the chart's RBAC, writes the kubeconfig)
        yield api


def namespace(i: int) -> str:
    return f"shop-{i:04d}"


def shop(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "microshop.dev/v1alpha1",
        "kind": "Shop",
        "metadata": {"name": "demo", "namespace": namespace(i)},
        "spec": {},
    }


def create_shops(api: Any, shops: int) -> None:
    with api.client() as admin:
        for i in range(shops):
            admin.post(
                f"/apis/microshop.dev/v1alpha1/namespaces/{namespace(i)}/shops", json=shop(i)
            ).raise_for_status()


def shops_ready(api: Any) -> int:
    count = 0
    for body in api.emulator.store.all(SHOP_RESOURCE):
        conditions = (body.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            count += 1
    return count


def workloads_ready(api: Any) -> int:
    count = 0
    for kind in WORKLOADS:
        for body in api.emulator.store.all(kind):
            wanted = (body.get("spec") or {}).get("replicas", 1)
            if (body.get("status") or {}).get("readyReplicas", 0) == wanted:
                count += 1
    return count


def wait_for(what: str, condition: Any, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


def requests_of(api: Any, user: str) -> tuple[int, int]:
    """(all requests, writes) the emulator has served to `user` so far."""
    served = list(api.emulator.requests_served.items())
    total = sum(n for (u, _, _), n in served if u == user)
    writes = sum(n for (u, verb, _), n in served if u == user and verb in WRITE_VERBS)
    return total, writes


# -- a process's CPU and memory -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def operator_user() -> str:
    from tools.manifests import RELEASE_NAMESPACE

    return f"system:serviceaccount:{RELEASE_NAMESPACE}:microshop-operator"


# -- the two runs -------------------------------------------------------------------------------


def measure_operator(directory: Path, shops: int, steady: float) -> Run:
    with cluster(directory, shops) as api:
        liveness = f"http://127.0.0.1:{free_ports(1)[0]}/healthz"
        env = {**os.environ, "KUBECONFIG": str(api.operator_kubeconfig)}
        log = (directory / "kopf.log").open("w")
        process = subprocess.Popen(
            kopf_run(liveness, "--standalone"),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for("the operator's liveness endpoint", lambda: _alive(liveness, process), 60)
            user = operator_user()
            requests0, writes0 = requests_of(api, user)
            cpu0 = cpu_seconds(process.pid)
            started = time.monotonic()
            create_shops(api, shops)
            wait_for(f"{shops} Shops Ready", lambda: shops_ready(api) == shops)
            seconds = time.monotonic() - started
            requests1, writes1 = requests_of(api, user)
            cpu1 = cpu_seconds(process.pid)
            run = Run(
                "operator",
                shops,
                seconds,
                requests1 - requests0,
                writes1 - writes0,
                cpu1 - cpu0,
                peak_rss_mib(process.pid),
            )
            if steady > 0:
                # Let the last status writes and workload events pass, then count a quiet window.
                wait_quiet(api, user)
                requests2, writes2 = requests_of(api, user)
                cpu2 = cpu_seconds(process.pid)
                time.sleep(steady)
                requests3, writes3 = requests_of(api, user)
                run.steady_seconds = steady
                run.steady_requests = requests3 - requests2
                run.steady_writes = writes3 - writes2
                run.steady_cpu_seconds = cpu_seconds(process.pid) - cpu2
                run.peak_rss_mib = peak_rss_mib(process.pid)
            return run
        finally:
            # Its figures are taken: a few seconds for a clean exit, then no more waiting (kopf
            # can take 5 s to close its watches).
            process.terminate()
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def wait_quiet(api: Any, user: str, quiet: float = QUIET_SECONDS, limit: float = 10.0) -> None:
    """Until `user` has sent nothing for `quiet` seconds (at most `limit`): the tail of the
    Ready transition (the last status patches) is not part of the steady state."""
    deadline = time.monotonic() + limit
    last, since = requests_of(api, user)[0], time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.2)
        now = requests_of(api, user)[0]
        if now != last:
            last, since = now, time.monotonic()


def _alive(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the operator exited with {process.returncode}")
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def measure_plain_client(directory: Path, shops: int) -> Run:
    from microshop_operator.builders import build_children

    with cluster(directory, shops) as api:
        env = {**os.environ, "KUBECONFIG": str(api.operator_kubeconfig)}
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.operator_bench", "--plain-client", str(shops)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            assert process.stdout.readline().strip() == b"ready", "the plain client did not start"
            kinds = [child["kind"] for child in build_children(shop(0))]
            expected = shops * sum(1 for kind in kinds if kind in ("Deployment", "StatefulSet"))
            user = operator_user()
            requests0, writes0 = requests_of(api, user)
            cpu0 = cpu_seconds(process.pid)
            started = time.monotonic()
            create_shops(api, shops)
            process.stdin.write(b"go\n")
            process.stdin.flush()
            wait_for(f"{shops} Shops' workloads Ready", lambda: workloads_ready(api) == expected)
            seconds = time.monotonic() - started
            done, cpu, rss = process.stdout.readline().split()
            assert done == b"done", "the plain client failed"
            requests1, writes1 = requests_of(api, user)
            return Run(
                "plain client",
                shops,
                seconds,
                requests1 - requests0,
                writes1 - writes0,
                float(cpu) - cpu0,
                float(rss),
            )
        finally:
            process.stdin.close()
            process.wait(timeout=30)


async def plain_client(shops: int) -> None:
    """The writes a Shop needs, done once with the operator's own client and builders: list the
    Shops, create each generated Secret, apply each child, patch the status once."""
    import kopf

    from microshop_operator.apply import KubernetesApi
    from microshop_operator.builders import build_children, build_generated_secrets
    from microshop_operator.config import OperatorConfig
    from microshop_operator.handlers import connect

    api: KubernetesApi = connect(kopf.OperatorSettings(), OperatorConfig())
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    listed = await api._request("GET", "/apis/microshop.dev/v1alpha1/shops")

    async def one(body: dict[str, Any]) -> None:
        body = {**body, "apiVersion": "microshop.dev/v1alpha1", "kind": "Shop"}
        owner = kopf.Body(body)  # type: ignore[arg-type]
        for secret in build_generated_secrets(body, generate=True):
            kopf.append_owner_reference(secret, owner=owner)
            await api.create_if_absent(secret)
        for child in build_children(body):
            kopf.append_owner_reference(child, owner=owner)
            await api.apply(child)
        await api.patch_status(body, {"observedGeneration": 1})

    await asyncio.gather(*(one(body) for body in listed["items"]))
    await api.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, as for the operator: ru_maxrss also counts the parent's memory at the fork
    # (Linux keeps the larger of the old and new image's high-water marks across exec), which
    # in make bench is the bench process with the earlier benchmarks' data (~300 MiB).
    rss = peak_rss_mib(os.getpid())
    print(f"done {usage.ru_utime + usage.ru_stime} {rss}", flush=True)


# -- the report ---------------------------------------------------------------------------------


def run(
    quick: bool = False, sizes: tuple[int, ...] | None = None, steady: float | None = None
) -> Report:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    steady = (QUICK_STEADY_SECONDS if quick else STEADY_SECONDS) if steady is None else steady
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as scratch:
        for n in sizes:
            for who, measure in (("plain", measure_plain_client), ("operator", None)):
                directory = Path(scratch) / f"{who}-{n}"
                directory.mkdir()
                if measure is None:
                    # The steady window at the largest size only, where idle requests would
                    # add up most; a window costs its length in wall time.
                    window = steady if n == max(sizes) else 0.0
                    runs.append(measure_operator(directory, n, window))
                else:
                    runs.append(measure(directory, n))
                print(
                    f"  {runs[-1].who:12} {n:4} Shops: {runs[-1].seconds:6.1f} s, "
                    f"{runs[-1].per_shop:6.1f} requests/Shop",
                    flush=True,
                )
    return report(runs, steady)


def report(runs: list[Run], steady: float) -> Report:
    plain = {r.shops: r for r in runs if r.who == "plain client"}
    rows = []
    for r in runs:
        base = plain.get(r.shops)
        rows.append(
            [
                r.who,
                r.shops,
                r.seconds,
                r.per_shop,
                r.writes / r.shops,
                r.cpu_seconds,
                r.peak_rss_mib,
                r.seconds / base.seconds if base and r is not base else float("nan"),
                r.per_shop / base.per_shop if base and r is not base else float("nan"),
            ]
        )
    operator = [r for r in runs if r.who == "operator"]
    steady_rows = [
        [
            r.shops,
            r.steady_seconds,
            r.steady_requests,
            r.steady_writes,
            r.idle_rate,
            r.steady_cpu_seconds,
        ]
        for r in operator
        if r.steady_seconds == r.steady_seconds  # measured (not NaN)
    ]
    largest = max(operator, key=lambda r: r.shops)
    per_shop = [r.per_shop for r in operator]
    notes = [
        f"requests per Shop from {min(per_shop):.0f} to {max(per_shop):.0f} over "
        f"{', '.join(str(r.shops) for r in operator)} Shops (constant: the largest is "
        f"{max(per_shop) / min(per_shop):.2f}x the smallest)",
        f"peak RSS at {largest.shops} Shops: {largest.peak_rss_mib:.0f} MiB (target < "
        f"{MAX_RSS_MIB:.0f} MiB: {'met' if largest.peak_rss_mib < MAX_RSS_MIB else 'MISSED'})",
    ]
    for r in operator:
        if r.steady_seconds == r.steady_seconds:
            verdict = "met" if r.idle_rate <= MAX_IDLE_RATE else "MISSED"
            notes.append(
                f"steady state at {r.shops} Shops: {r.idle_rate:.4f} requests/s per Shop, "
                f"{r.steady_writes} writes in {r.steady_seconds:.0f} s "
                f"(target <= {MAX_IDLE_RATE}: {verdict})"
            )
    figure = Figure(
        title="operator against the API emulator",
        x_label="Shops",
        panels=[
            ("seconds", "seconds to all Ready", True),
            ("rss", "peak RSS MiB", False),
            ("per_shop", "API requests per Shop", False),
        ],
        points={
            who: [
                {"x": r.shops, "seconds": r.seconds, "rss": r.peak_rss_mib, "per_shop": r.per_shop}
                for r in runs
                if r.who == who
            ]
            for who in ("operator", "plain client")
        },
    )
    return Report(
        name="operator",
        title="Operator: N Shops against the API emulator, next to a plain client",
        tables=[
            Table(
                "to all applied and Ready",
                [
                    "who",
                    "Shops",
                    "seconds",
                    "requests/Shop",
                    "writes/Shop",
                    "CPU s",
                    "peak RSS MiB",
                    "time vs plain",
                    "requests vs plain",
                ],
                rows,
            ),
            Table(
                f"steady state, nothing changing ({steady:.0f} s window)",
                ["Shops", "window s", "requests", "writes", "req/s per Shop", "CPU s"],
                steady_rows,
            ),
        ],
        figure=figure,
        notes=notes,
        data={"runs": [asdict(r) for r in runs]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shops", type=int, nargs="*", help=f"sizes (default {SIZES})")
    parser.add_argument("--steady", type=float, help="steady-state window in seconds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--plain-client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_client is not None:
        asyncio.run(plain_client(args.plain_client))
        return 0
    result = run(args.quick, tuple(args.shops) if args.shops else None, args.steady)
    print(result.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
