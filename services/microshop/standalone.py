"""Every service of the registry in one process on embedded defaults: SQLite, the embedded
document store and the in-process bus. The gateway forwards to the others over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from microshop.gateway.serve import GatewayServer
from microshop.gateway.settings import upstream_settings
from microshop.platform.auth import load_or_create_key_pair
from microshop.platform.logs import add_secrets
from microshop.platform.server import SignalFreeServer, metrics_config, server_config
from microshop.platform.settings import ServiceSettings
from microshop.registry import BACKENDS, GATEWAY, NAMES, SERVICES, Service

log = logging.getLogger(__name__)


class Ports(dict[str, int]):
    """The port of each service of the registry, by name; `metrics`, each one's metrics port.

    Five registries in one process keep five scrape targets (one exposition would repeat every
    metric name): from 9090 at the services' own offsets, the gateway's first.
    """

    def __init__(self, ports: dict[str, int], metrics: dict[str, int] | None = None) -> None:
        super().__init__(ports)
        self.metrics = dict(metrics or {})

    @classmethod
    def default(cls, gateway: int = 8080, metrics: int = 9090) -> Ports:
        return cls(
            {service.name: gateway + service.port_offset for service in SERVICES},
            {service.name: metrics + service.port_offset for service in SERVICES},
        )

    @classmethod
    def free(cls) -> Ports:
        ports = iter(free_ports(2 * len(SERVICES)))
        return cls(
            {service.name: next(ports) for service in SERVICES},
            {service.name: next(ports) for service in SERVICES},
        )

    @property
    def gateway(self) -> int:
        return self[GATEWAY.name]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now: all bound at once, so the kernel cannot hand out one of
    them twice (ports asked for one by one, each released before the next, can repeat)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


def build_apps(data_dir: Path, ports: Ports, host: str = "127.0.0.1") -> dict[str, FastAPI]:
    """Every service's app wired together on embedded defaults, their data kept in `data_dir`."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = load_or_create_key_pair(data_dir / "keys")
    add_secrets([keys.private_pem])
    # One in-process bus for the whole shop.
    bus_url = f"memory://{data_dir}"

    def settings_of(service: Service) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "host": host,
            "port": ports[service.name],
            "jwt_public_key": keys.public_pem,
        }
        if service.database:  # PostgreSQL's and MongoDB's embedded stand-in alike: SQLite
            settings["database_url"] = f"sqlite:///{data_dir / f'{service.name}.db'}"
        if service.bus:
            settings["bus_url"] = bus_url
        if service.signs_tokens:
            settings["jwt_private_key"] = keys.private_pem
        if service is GATEWAY:
            settings.update(
                upstream_settings({b.name: f"http://{host}:{ports[b.name]}" for b in BACKENDS})
            )
        return settings

    return {
        service.name: service.create_app(service.settings_class()(**settings_of(service)))
        for service in SERVICES
    }


class StandaloneShop:
    def __init__(self, data_dir: Path, ports: Ports, host: str = "127.0.0.1") -> None:
        self.ports, self.host = ports, host
        self.apps = apps = build_apps(data_dir, ports, host)
        settings = {
            name: ServiceSettings(
                host=host, port=ports[name], metrics_port=ports.metrics.get(name, 0)
            )
            for name in NAMES
        }
        # The registry's order: the services start before the gateway in front of them. The
        # gateway has its own HTTP server; the shop's signals stop it like the others.
        self.servers: dict[str, SignalFreeServer | GatewayServer] = {
            name: GatewayServer(apps[name])
            if name == GATEWAY.name
            else SignalFreeServer(server_config(apps[name], settings[name], lifespan="on"))
            for name in NAMES
        }
        # Started after the apps they report on, stopped with them.
        self.metrics_servers = [
            SignalFreeServer(config)
            for name in NAMES
            if (config := metrics_config(apps[name], settings[name])) is not None
        ]

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.ports.gateway}"

    async def start(self) -> None:
        """Start the services, then the gateway, each once its predecessor is serving."""
        self._tasks = []
        for name, server in self.servers.items():
            self._tasks.append(asyncio.create_task(server.serve(), name=f"serve-{name}"))
            while not server.started:
                if self._tasks[-1].done():
                    self._tasks[-1].result()  # raises the start-up error
                    raise RuntimeError(f"{name} stopped during start-up")
                await asyncio.sleep(0.02)
        for server in self.metrics_servers:
            self._tasks.append(asyncio.create_task(server.serve(), name="serve-metrics"))

    async def stop(self) -> None:
        for server in [*self.metrics_servers, *reversed(list(self.servers.values()))]:
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        from microshop.platform.bus.memory import forget_shared_buses

        forget_shared_buses()

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("microshop is serving on %s (Ctrl-C stops it)", self.gateway_url)
        print(f"microshop standalone: the storefront is on {self.gateway_url}/")
        print(f"  API {self.gateway_url}/api/v1, docs {self.gateway_url}/docs")
        metrics = ", ".join(f"{name} :{port}" for name, port in self.ports.metrics.items())
        print(f"metrics (GET /metrics): {metrics}")
        print("press Ctrl-C to stop", flush=True)
        await stop.wait()
        await self.stop()
