"""The five services as five processes, configured by environment only, as in a cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from microshop.platform.auth import KeyPair
from microshop.standalone import free_ports

SQL_SERVICES = ("users", "payments", "notifications")
BACKENDS = ("users", "orders", "payments", "notifications")


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def start(self, wait: bool = True) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "microshop", self.name],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 180) -> None:
        # Generous: five interpreters importing at once on a shared two-core machine take a while.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited at start:\n{self.log.read_text()[-3000:]}")
            if self.ready():
                return
            time.sleep(0.1)
        pytest.fail(f"{self.name} not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is, nothing runs on its way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the process hangs with its connections open (a stuck pod)."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot hear SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Shop:
    services: dict[str, Service]
    database_urls: dict[str, str]
    amqp_url: str
    keys: KeyPair
    logs: list[Path] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return self.services["gateway"].url

    def start(self) -> None:
        for service in self.services.values():
            service.start(wait=False)
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()


def build_shop(
    workdir: Path,
    database_urls: Mapping[str, str],
    amqp_url: str,
    keys: KeyPair,
    extra_env: Mapping[str, str] | None = None,
) -> Shop:
    """Five services (not started) on the given databases (one URL per backend) and bus."""
    # Every port of the shop at once: asked for one by one, the kernel can repeat one (a
    # metrics port was once another service's public port).
    free = iter(free_ports(2 * len(BACKENDS) + 2))
    ports = {name: next(free) for name in BACKENDS}
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
        "MICROSHOP_JWT_PUBLIC_KEY": keys.public_pem,
        "MICROSHOP_BUS_URL": amqp_url,
        "MICROSHOP_LOG_LEVEL": "INFO",
        "MICROSHOP_OUTBOX_POLL_SECONDS": "0.2",
        "MICROSHOP_RELAY_RETRY_FIRST_SECONDS": "0.4",
        "MICROSHOP_CONSUMER_RETRY_BASE_SECONDS": "0.2",
        **(extra_env or {}),
    }
    envs: dict[str, dict[str, str]] = {
        name: {"MICROSHOP_DATABASE_URL": database_urls[name]} for name in BACKENDS
    }
    envs["users"]["MICROSHOP_JWT_PRIVATE_KEY"] = keys.private_pem
    services = {
        name: Service(
            name,
            port,
            {
                **base_env,
                **envs[name],
                "MICROSHOP_PORT": str(port),
                "MICROSHOP_METRICS_PORT": str(next(free)),
            },
            workdir / f"{name}.log",
        )
        for name, port in ports.items()
    }
    gateway_port = next(free)
    services["gateway"] = Service(
        "gateway",
        gateway_port,
        {
            **base_env,
            "MICROSHOP_PORT": str(gateway_port),
            "MICROSHOP_METRICS_PORT": str(next(free)),
            **{f"MICROSHOP_{n.upper()}_URL": services[n].url for n in ports},
        },
        workdir / "gateway.log",
    )
    return Shop(services, dict(database_urls), amqp_url, keys, [s.log for s in services.values()])
