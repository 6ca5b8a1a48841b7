"""All five services in one process on embedded defaults: SQLite, the embedded document store
and the in-process bus. The gateway forwards to the others over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from microshop.platform.auth import TokenVerifier, load_or_create_key_pair

log = logging.getLogger(__name__)

SERVICE_ORDER = ("users", "orders", "payments", "notifications")  # the gateway starts last


@dataclass(frozen=True)
class Ports:
    gateway: int
    users: int
    orders: int
    payments: int
    notifications: int

    @classmethod
    def default(cls, gateway: int = 8080) -> Ports:
        return cls(gateway, gateway + 1, gateway + 2, gateway + 3, gateway + 4)

    @classmethod
    def free(cls) -> Ports:
        return cls(*(_free_port() for _ in range(5)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_apps(data_dir: Path, ports: Ports, host: str = "127.0.0.1") -> dict[str, FastAPI]:
    """The five apps wired together on embedded defaults, their data kept in `data_dir`."""
    from microshop.gateway.app import create_app as gateway_app
    from microshop.gateway.settings import GatewaySettings
    from microshop.notifications.app import create_app as notifications_app
    from microshop.notifications.settings import NotificationsSettings
    from microshop.orders.app import create_app as orders_app
    from microshop.orders.settings import OrdersSettings
    from microshop.payments.app import create_app as payments_app
    from microshop.payments.settings import PaymentsSettings
    from microshop.users.app import create_app as users_app
    from microshop.users.settings import UsersSettings

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = load_or_create_key_pair(data_dir / "keys")
    bus_url = f"memory://{data_dir}"
    common: dict[str, Any] = {"jwt_public_key": keys.public_pem, "bus_url": bus_url, "host": host}

    def sqlite(name: str) -> str:
        return f"sqlite:///{data_dir / f'{name}.db'}"

    def url(port: int) -> str:
        return f"http://{host}:{port}"

    return {
        "users": users_app(
            UsersSettings(
                **common,
                port=ports.users,
                database_url=sqlite("users"),
                jwt_private_key=keys.private_pem,
            )
        ),
        "orders": orders_app(
            OrdersSettings(
                **common, port=ports.orders, database_url=f"montydb:///{data_dir / 'orders'}"
            )
        ),
        "payments": payments_app(
            PaymentsSettings(**common, port=ports.payments, database_url=sqlite("payments"))
        ),
        "notifications": notifications_app(
            NotificationsSettings(
                **common, port=ports.notifications, database_url=sqlite("notifications")
            )
        ),
        "gateway": gateway_app(
            GatewaySettings(
                jwt_public_key=keys.public_pem,
                host=host,
                port=ports.gateway,
                users_url=url(ports.users),
                orders_url=url(ports.orders),
                payments_url=url(ports.payments),
                notifications_url=url(ports.notifications),
            ),
            TokenVerifier(keys.public_pem),
        ),
    }


class _Server(uvicorn.Server):
    """One of several servers in one loop: signals are handled once, by the standalone shop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StandaloneShop:
    def __init__(self, data_dir: Path, ports: Ports, host: str = "127.0.0.1") -> None:
        self.ports, self.host = ports, host
        apps = build_apps(data_dir, ports, host)
        self.servers = {
            name: _Server(
                uvicorn.Config(
                    apps[name],
                    host=host,
                    port=getattr(ports, name),
                    log_config=None,
                    lifespan="on",
                    access_log=False,
                )
            )
            for name in (*SERVICE_ORDER, "gateway")
        }

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

    async def stop(self) -> None:
        for server in reversed(list(self.servers.values())):
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
        print(
            f"microshop standalone: gateway on {self.gateway_url}  (docs: {self.gateway_url}/docs)"
        )
        print("press Ctrl-C to stop", flush=True)
        await stop.wait()
        await self.stop()
