"""The machine's real PostgreSQL and RabbitMQ, and the five services as separate processes.

Each test session gets its own PostgreSQL databases and RabbitMQ virtual host, so runs never
see each other's data. With CI=true a missing server fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from microshop.platform import db
from microshop.platform.auth import generate_key_pair
from tests.support.outbox_schema import PlatformTestBase
from tests.support.servers import (
    PrivatePostgres,
    RabbitNode,
    SecantusServer,
    private_postgres_server,
    private_rabbitmq_node,
    secantus_server,
    unavailable,
)
from tests.support.shop import SQL_SERVICES, Shop, build_shop

PG_ADMIN = os.environ.get("MICROSHOP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("MICROSHOP_TEST_AMQP_HOST", "127.0.0.1")
AMQP_PORT = int(os.environ.get("MICROSHOP_TEST_AMQP_PORT", "5672"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres() -> Iterator[dict[str, str]]:
    """One fresh database per SQL service; their SQLAlchemy URLs by service name."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except Exception as exc:
        unavailable("PostgreSQL at 127.0.0.1:5432", exc)
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
        unavailable(f"RabbitMQ at {AMQP_HOST}:{AMQP_PORT}", exc)
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


@pytest.fixture(scope="session")
def shop(
    postgres: dict[str, str],
    rabbitmq: str,
    secantus: SecantusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shop]:
    """The five services as five processes on PostgreSQL, RabbitMQ and the MongoDB wire server
    (SecantusDB), configured by env only."""
    orders_url = f"{secantus.url}?appname=orders-{uuid.uuid4().hex[:8]}"
    shop = build_shop(
        tmp_path_factory.mktemp("shop"),
        {**postgres, "orders": orders_url},
        rabbitmq,
        generate_key_pair(),
        {"MICROSHOP_DATABASE_NAME": f"orders_it_{uuid.uuid4().hex[:8]}"},
    )
    try:
        shop.start()
        yield shop
    finally:
        shop.stop()


# -- Bus fault tests (test_bus_faults.py): a virtual host and a database per test, and a private
# RabbitMQ node that a test may stop and start without touching the machine's broker. ---------


@pytest.fixture
def bus_vhost(rabbitmq: str) -> Iterator[str]:
    """A fresh virtual host on the machine's RabbitMQ, so no other test's queue sees our events."""
    yield from _fresh_vhost()


@pytest.fixture(scope="module")
def module_vhost(rabbitmq: str) -> Iterator[str]:
    """A virtual host for a module's own shop: the session shop's consumers read queues of the
    same names, and would take its messages in a shared one."""
    yield from _fresh_vhost()


def _fresh_vhost() -> Iterator[str]:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl", FileNotFoundError("rabbitmqctl"))
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


@pytest.fixture
def sessions(bus_database: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh PostgreSQL database holding the platform's test schema (an outbox,
    an inbox and the effects a consumer writes: tests/support/outbox_schema.py)."""
    engine = db.make_engine(bus_database)
    PlatformTestBase.metadata.create_all(engine)
    yield db.make_session_factory(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def private_rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the test's own, which it may stop and restart at will.

    The machine's broker is shared with other runs and must never be restarted by a test.
    """
    with private_rabbitmq_node(tmp_path_factory.mktemp("rabbitmq-node")) as node:
        yield node


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own, which it may stop, crash and restart."""
    with private_postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def secantus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """A SecantusDB server (the MongoDB wire protocol) for the orders service."""
    with secantus_server(tmp_path_factory.mktemp("secantus")) as server:
        yield server
