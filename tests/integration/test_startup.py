"""In a cluster a service may start before its database: it must wait unready, not crash-loop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from microshop.platform.auth import generate_key_pair
from tests.integration.conftest import PG_ADMIN
from tests.support.polling import wait_until
from tests.support.servers import free_port


def test_a_service_started_before_its_database_becomes_ready_when_it_appears(
    tmp_path: Path, postgres: dict[str, str]
) -> None:
    name = f"microshop_late_{uuid.uuid4().hex[:8]}"
    base = postgres["payments"].rsplit("/", 1)[0]
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
        "MICROSHOP_DATABASE_URL": f"{base}/{name}",  # does not exist yet
        "MICROSHOP_BUS_URL": "memory://",
        "MICROSHOP_JWT_PUBLIC_KEY": generate_key_pair().public_pem,
        "MICROSHOP_PORT": str(port),
    }
    log = tmp_path / "payments.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "microshop", "payments"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers(path: str) -> httpx.Response | None:
        try:
            return httpx.get(url + path, timeout=2)
        except httpx.HTTPError:
            return None

    try:
        wait_until(lambda: answers("/healthz"), timeout=120)  # a fresh interpreter, busy machine
        unready = answers("/readyz")
        assert unready is not None and unready.status_code == 503
        # A fixed reason on the public port; what the server said is in the log.
        assert unready.json()["detail"].startswith("not ready: database not reachable yet")
        assert name not in unready.text
        assert any(name in line and "does not exist" in line for line in log.open())
        time.sleep(1.5)  # a retry or two later it is still alive, still waiting
        assert process.poll() is None, log.read_text()[-2000:]

        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            wait_until(lambda: (r := answers("/readyz")) is not None and r.status_code == 200,
                       timeout=20)  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=10)
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if process.poll() is None:
            process.kill()
