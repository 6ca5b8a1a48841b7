"""A burst of wrong-password logins keeps the users process inside its container's memory limit."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import httpx

from microshop.platform.auth import generate_key_pair
from tests.support.polling import wait_until
from tests.support.servers import free_port
from tests.support.shop import Service

MEMORY_LIMIT_BYTES = 256 * 1024 * 1024  # what the operator gives the users container
CONCURRENT_LOGINS = 64


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), what a cgroup limit meets."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


async def burst(url: str, email: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT_LOGINS)
    # Generous: on a loaded machine 64 hashes in two threads take minutes, not seconds.
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        return await asyncio.gather(
            *(
                http.post(
                    "/api/v1/auth/token",
                    data={"username": email, "password": f"wrong-{n}"},
                    headers={"X-Forwarded-For": f"198.51.100.{n}"},
                )
                for n in range(CONCURRENT_LOGINS)
            )
        )


def test_64_concurrent_wrong_logins_stay_inside_the_users_memory_limit(
    bus_database: str, tmp_path: Path
) -> None:
    keys = generate_key_pair()
    port = free_port()
    users = Service(
        "users",
        port,
        {
            **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
            "MICROSHOP_PORT": str(port),
            "MICROSHOP_METRICS_PORT": "0",
            "MICROSHOP_DATABASE_URL": bus_database,
            "MICROSHOP_JWT_PUBLIC_KEY": keys.public_pem,
            "MICROSHOP_JWT_PRIVATE_KEY": keys.private_pem,
            # Throttling off in effect: only the bound on hashing stands between the burst and
            # the memory limit.
            "MICROSHOP_LOGIN_FAILURES_PER_ACCOUNT": "1000",
            "MICROSHOP_LOGIN_FAILURES_PER_CLIENT": "1000",
        },
        tmp_path / "users.log",
    )
    email, password = f"mem-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    users.start(wait=False)
    users.wait_ready(timeout=120)
    try:
        assert users.process is not None
        registered = httpx.post(
            f"{users.url}/api/v1/users",
            json={"email": email, "password": password, "name": "Memory"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        before = peak_rss_bytes(users.process.pid)

        responses = asyncio.run(burst(users.url, email))

        peak = peak_rss_bytes(users.process.pid)
        statuses = [r.status_code for r in responses]
        print(
            f"\n{CONCURRENT_LOGINS} concurrent wrong logins: users peak RSS {peak / 2**20:.0f} MiB "
            f"(before the burst {before / 2**20:.0f} MiB; limit 256 MiB); "
            f"{statuses.count(401)} checked (401), {statuses.count(503)} refused busy (503)"
        )
        assert peak < MEMORY_LIMIT_BYTES
        assert set(statuses) <= {401, 503}, statuses
        assert statuses.count(401) >= 1  # the burst did hash: this is not a throttle's answer
        assert all(r.headers.get("Retry-After") == "1" for r in responses if r.status_code == 503)

        def log_in() -> httpx.Response | None:
            answer = httpx.post(
                f"{users.url}/api/v1/auth/token",
                data={"username": email, "password": password},
                timeout=120,
            )
            return None if answer.status_code == 503 else answer  # busy: its Retry-After

        login = wait_until(log_in, timeout=120, interval=1.0, what="a login after the burst")
        assert login.status_code == 200, login.text
    finally:
        users.stop()
