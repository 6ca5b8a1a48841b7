"""schemathesis against a fresh standalone shop, through its gateway: `python -m tools.contract`.

Every check, every phase (examples, coverage, fuzzing, stateful), authenticated as a user it
registers first. Prints schemathesis's own report and a one-line summary (operations, cases,
failures per check); exits with schemathesis's status. `make contract` runs it; the bounded run
in `make test` is tests/contract.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from microshop.standalone import Ports, StandaloneShop

CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass(frozen=True)
class Summary:
    operations: int
    cases: int
    failures: dict[str, int]  # check name -> unique failures
    exit_code: int

    def line(self) -> str:
        failures = ", ".join(f"{check}: {n}" for check, n in sorted(self.failures.items()))
        return (
            f"schemathesis: {self.operations} operations, {self.cases} cases, "
            f"{sum(self.failures.values())} failures ({failures or 'none'})"
        )


@contextmanager
def standalone_shop(data_dir: Path) -> Iterator[str]:
    """A standalone shop serving from a thread of its own; its gateway's URL."""
    shop = StandaloneShop(data_dir, Ports.free())
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            try:
                await shop.start()
            except BaseException as exc:
                failed.append(exc)
                raise
            finally:
                started.set()
            while not stopping.is_set():
                await asyncio.sleep(0.05)
            await shop.stop()

        loop.run_until_complete(main())

    stopping = threading.Event()
    thread = threading.Thread(target=run, name="standalone-shop", daemon=True)
    thread.start()
    started.wait(120)
    if failed:
        raise RuntimeError("the standalone shop did not start") from failed[0]
    try:
        yield shop.gateway_url
    finally:
        stopping.set()
        thread.join(30)


def bearer_token(gateway: str) -> str:
    email, password = f"contract-{uuid.uuid4().hex[:8]}@example.com", "a contract test user"
    with httpx.Client(base_url=gateway, timeout=30) as http:
        http.post(
            "/api/v1/users", json={"email": email, "password": password, "name": "Contract"}
        ).raise_for_status()
        answer = http.post("/api/v1/auth/token", data={"username": email, "password": password})
        answer.raise_for_status()
        return str(answer.json()["access_token"])


def run_schemathesis(
    gateway: str, token: str, max_examples: int, seed: int, report: Path
) -> Summary:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "run",
            f"{gateway}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            str(max_examples),
            "--seed",
            str(seed),
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        text=True,
    )
    return summarise(report, done.returncode)


def summarise(report: Path, exit_code: int) -> Summary:
    """Operations, cases and unique failures per check, from schemathesis's JSON run report."""
    run = json.loads(report.read_text())
    failures = {f"{f['code']} {f['title']}": int(f["count"]) for f in run["failures"]}
    if run["errors"]:
        failures["errors"] = len(run["errors"])
    return Summary(run["operations"]["tested"], run["test_cases"]["generated"], failures, exit_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data, standalone_shop(Path(data)) as gateway:
        summary = run_schemathesis(
            gateway, bearer_token(gateway), args.max_examples, args.seed, Path(data) / "st.json"
        )
    print(summary.line())
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
