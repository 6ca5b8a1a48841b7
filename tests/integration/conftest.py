"""The machine's real PostgreSQL and RabbitMQ, and the five services as separate processes.

Each test session gets its own PostgreSQL databases and RabbitMQ virtual host, so runs never
see each other's data. With CI=true a missing server fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pika
import psycopg
import pytest

from microshop.platform.auth import KeyPair, generate_key_pair

PG_ADMIN = os.environ.get("MICROSHOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("MICROSHOP_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("MICROSHOP_TEST_AMQP_PORT", "5672"))
SQL_SERVICES = ("users", "payments", "notifications")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc!r}); start it (see README) to run integration tests"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, str]]:
    """One fresh database per SQL service; their SQLAlchemy URLs by service name."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        _unavailable("PostgreSQL at 127.0.0.1:5432", exc)
    suffix = uuid.uuid4().hex[:8]
    names = {service: f"microshop_it_{service}_{suffix}" for service in SQL_SERVICES}
    with admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield {service: f"{base}/{name}" for service, name in names.items()}
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[str]:
    """A private virtual host on the machine's RabbitMQ; its amqp:// URL."""
    try:
        pika.BlockingConnection(pika.ConnectionParameters(AMQP_HOST, AMQP_PORT)).close()
    except Exception as exc:
        _unavailable(f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT}", exc)
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/%2F"
        return
    vhost = f"microshop-it-{uuid.uuid4().hex[:8]}"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True)


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

    def start(self, wait: bool = True) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "microshop", self.name],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"{self.name} not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
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


@pytest.fixture(scope="session")
def shop(
    postgres: dict[str, str], rabbitmq: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """The five services as five processes on PostgreSQL and RabbitMQ, configured by env only."""
    keys = generate_key_pair()
    workdir = tmp_path_factory.mktemp("shop")
    ports = {name: _free_port() for name in ("users", "orders", "payments", "notifications")}
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
        "MICROSHOP_JWT_PUBLIC_KEY": keys.public_pem,
        "MICROSHOP_BUS_URL": rabbitmq,
        "MICROSHOP_LOG_LEVEL": "INFO",
        "MICROSHOP_OUTBOX_POLL_SECONDS": "0.2",
        "MICROSHOP_CONSUMER_RETRY_BASE_SECONDS": "0.2",
    }
    envs = {
        "users": {
            "MICROSHOP_DATABASE_URL": postgres["users"],
            "MICROSHOP_JWT_PRIVATE_KEY": keys.private_pem,
        },
        "orders": {"MICROSHOP_DATABASE_URL": f"montydb:///{workdir / 'orders'}"},
        "payments": {"MICROSHOP_DATABASE_URL": postgres["payments"]},
        "notifications": {"MICROSHOP_DATABASE_URL": postgres["notifications"]},
    }
    services = {
        name: Service(
            name,
            port,
            {**base_env, **envs[name], "MICROSHOP_PORT": str(port)},
            workdir / f"{name}.log",
        )
        for name, port in ports.items()
    }
    gateway_port = _free_port()
    services["gateway"] = Service(
        "gateway",
        gateway_port,
        {
            **base_env,
            "MICROSHOP_PORT": str(gateway_port),
            **{f"MICROSHOP_{n.upper()}_URL": services[n].url for n in ports},
        },
        workdir / "gateway.log",
    )
    try:
        for service in services.values():
            service.start(wait=False)
        for service in services.values():
            service.wait_ready()
        yield Shop(services, postgres, rabbitmq, keys, [s.log for s in services.values()])
    finally:
        for service in services.values():
            service.stop()


# -- Bus fault tests (test_bus_faults.py): a virtual host and a database per test, and a private
# RabbitMQ node that a test may stop and start without touching the machine's broker. ---------


@pytest.fixture
def bus_vhost(rabbitmq: str) -> Iterator[str]:
    """A fresh virtual host on the machine's RabbitMQ, so no other test's queue sees our events."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        _unavailable("rabbitmqctl", FileNotFoundError("rabbitmqctl"))
    assert ctl is not None  # _unavailable skipped or failed the test
    vhost = f"microshop-bus-{uuid.uuid4().hex[:8]}"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture
def bus_database(postgres: dict[str, str]) -> Iterator[str]:
    """A fresh PostgreSQL database of one's own; its SQLAlchemy URL."""
    name = f"microshop_bus_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        yield f"{base}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The Debian wrappers in /usr/sbin re-run every command as the rabbitmq user (and the server's
# wrapper writes into the machine node's log directory), so the node runs from the real scripts.
RABBITMQ_SCRIPTS = Path(os.environ.get("MICROSHOP_TEST_RABBITMQ_SCRIPTS", "/usr/lib/rabbitmq/bin"))


@dataclass
class RabbitNode:
    """A throwaway RabbitMQ node: its own name, ports, data, logs and Erlang cookie."""

    name: str
    port: int
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def ctl(self, *args: str, timeout: float = 30) -> None:
        subprocess.run(
            [str(RABBITMQ_SCRIPTS / "rabbitmqctl"), "-q", "-n", self.name, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def accepts_amqp(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url)).close()
        except pika.exceptions.AMQPError:
            return False
        return True

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(RABBITMQ_SCRIPTS / "rabbitmq-server")],
            env=self.env,
            stdout=(self.workdir / "server.out").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepts_amqp():
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.workdir / "server.out").read_text()[-3000:]
                pytest.fail(f"private RabbitMQ node {self.name} did not start:\n{output}")
            time.sleep(0.1)

    def stop_app(self) -> None:
        """The broker goes away (connections closed, the port refuses) but keeps its data."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_ready()

    def shutdown(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctl("stop", timeout=20)
            self.process.wait(timeout=20)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.process.pid, 9)  # our own session: the script and its beam process
            self.process.wait()


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, which it may stop and restart at will.

    The machine's broker is shared with other runs and must never be restarted by a test.
    """
    server = RABBITMQ_SCRIPTS / "rabbitmq-server"
    if not server.exists():
        _unavailable(f"rabbitmq-server in {RABBITMQ_SCRIPTS}", FileNotFoundError(str(server)))
    workdir = tmp_path_factory.mktemp("rabbitmq-node")
    home = workdir / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"  # a cookie of its own: root's CLI talks to it, nothing else
    cookie.write_text(uuid.uuid4().hex)
    cookie.chmod(0o400)
    (workdir / "env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf (its NODENAME)
    (workdir / "enabled_plugins").write_text("[].\n")  # no management plugin: boots in seconds
    port, dist_port = _free_port(), _free_port()
    (workdir / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
    name = f"microshop-it-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
        "HOME": str(home),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_CONF_ENV_FILE": str(workdir / "env.conf"),
        "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
    }
    node = RabbitNode(name, port, env, workdir)
    node.start()
    try:
        node.wait_ready()
        yield node
    finally:
        node.shutdown()
