"""`make bench`: every benchmark end to end, each table printed, JSON and a plot in bench/results.

A benchmark is a module with `run(quick: bool) -> Report` (bench/report.py), listed once in
BENCHMARKS below; the runner imports it, times it and saves what it reports.

    .venv/bin/python -m bench.run                 # all of them (make bench)
    .venv/bin/python -m bench.run gateway --quick # one, shorter
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET_SECONDS = 600  # issue 14: make bench end to end in under 10 minutes


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    what: str


# One entry per benchmark; the module's `run(quick)` returns a Report.
BENCHMARKS = (
    Benchmark("gateway", "bench.gateway_bench", "gateway req/s and p99 vs direct and nginx"),
    Benchmark("store", "bench.store_bench", "orders store lookups at 100 vs 10,000 orders"),
    Benchmark("saga", "bench.saga_bench", "settled orders/s vs a raw ceiling, wire + standalone"),
    Benchmark(
        "operator", "bench.operator_bench", "operator at 1-100 Shops vs a plain client's writes"
    ),
)


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load}"
    )


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, for a smoke check")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.names or b.name in args.names]
    unknown = set(args.names) - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    print(f"# make bench\n\n{machine()}\n", flush=True)
    started = time.monotonic()
    failed = []
    spent: list[tuple[str, float, str, str]] = []  # name, seconds, load at start, at end
    for benchmark in chosen:
        began, load_before = time.monotonic(), load()
        print(f"running {benchmark.name}: {benchmark.what} ...", flush=True)
        try:
            report = importlib.import_module(benchmark.module).run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{benchmark.name} failed: {type(exc).__name__}: {exc}", flush=True)
            failed.append(benchmark.name)
            spent.append(
                (benchmark.name + " (failed)", time.monotonic() - began, load_before, load())
            )
            continue
        seconds = time.monotonic() - began
        spent.append((benchmark.name, seconds, load_before, load()))
        report.data.setdefault("machine", machine())
        report.data["seconds"] = round(seconds, 1)
        report.data["load_average"] = {"start": load_before, "end": spent[-1][3]}
        print("\n" + report.render() + "\n", flush=True)
        for path in report.save(RESULTS):
            print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    elapsed = time.monotonic() - started
    print("\n| benchmark | seconds | load average at start | at end |\n|---|---:|---|---|")
    for name, seconds, before, after in spent:
        print(f"| {name} | {seconds:.0f} | {before} | {after} |")
    print(
        f"\n{len(chosen) - len(failed)} of {len(chosen)} benchmarks in {elapsed:.0f} s"
        f" (budget {BUDGET_SECONDS} s{', quick' if args.quick else ''}:"
        f" {'within' if elapsed < BUDGET_SECONDS else 'OVER'})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
