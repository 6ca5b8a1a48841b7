"""Every failure path of the five processes, and not one secret in anything they print.

The gateway's upstream answers garbage, an oversized head, a truncated body, then refuses
connections; users and payments hit database errors carrying user data (a trigger refuses
their inserts), orders' document store speaks garbage, notifications' database refuses
connections. Every URL carries a password and every request a bearer token.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pika
import psycopg
import pytest

from microshop.events import EXCHANGE, OrderCreated, PaymentSucceeded
from microshop.platform.auth import Principal, TokenIssuer, generate_key_pair
from tests.integration.conftest import PG_ADMIN
from tests.support.polling import wait_until
from tests.support.servers import free_ports
from tests.support.shop import Service

DB_PASSWORD = "pg-" + uuid.uuid4().hex
MONGO_PASSWORD = "mongo-" + uuid.uuid4().hex
BROKER_PASSWORD = "guest"  # the machine's broker takes guest/guest: searched as "guest:guest@"
USER_PASSWORD = "user-pw-" + uuid.uuid4().hex
TRIGGER = """
CREATE FUNCTION refuse() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql;
CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse();
"""


class ScriptedUpstream:
    """A TCP server that answers each connection with `reply`, then closes it; `close()` makes
    the port refuse connections."""

    def __init__(self) -> None:
        self.reply = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        # shutdown() wakes the accept() in progress; close() alone would leave it listening.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    """Three fresh databases; their SQLAlchemy URLs with a password (the server trusts any)."""
    suffix = uuid.uuid4().hex[:8]
    names = {s: f"microshop_secrets_{s}_{suffix}" for s in ("users", "payments")}
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
        host = PG_ADMIN.split("@", 1)[1].rsplit("/", 1)[0]
        yield {
            service: f"postgresql+psycopg://postgres:{DB_PASSWORD}@{host}/{name}"
            for service, name in names.items()
        }
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def refuse_inserts(database_url: str, table: str) -> None:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(TRIGGER.format(table=table).encode())


def wait_serving(service: Service, ready: bool = False) -> None:
    def answers() -> bool:
        assert service.process is not None and service.process.poll() is None, (
            f"{service.name} exited:\n{service.log.read_text()[-3000:]}"
        )
        try:
            path = "/readyz" if ready else "/healthz"
            return httpx.get(service.url + path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, timeout=180, what=f"{service.name} serving")


def publish(amqp_url: str, event: OrderCreated | PaymentSucceeded) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().basic_publish(
            EXCHANGE,
            event.type,
            event.model_dump_json().encode(),
            pika.BasicProperties(content_type="application/json", message_id=event.event_id),
        )
    finally:
        connection.close()


def test_no_failure_of_any_process_prints_a_secret(
    databases: dict[str, str], bus_vhost: str, tmp_path: Path
) -> None:
    keys = generate_key_pair()
    token = TokenIssuer(keys.private_pem, 600).issue(Principal("u-secrets", "s@example.com"))
    upstream = ScriptedUpstream()
    garbage_store = ScriptedUpstream()
    garbage_store.reply = b"\x00\xff not a MongoDB wire message \xfe" * 20
    base_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MICROSHOP_")},
        "MICROSHOP_JWT_PUBLIC_KEY": keys.public_pem,
        "MICROSHOP_BUS_URL": bus_vhost,
        "MICROSHOP_LOG_LEVEL": "DEBUG",
        "MICROSHOP_METRICS_PORT": "0",
        "MICROSHOP_CONSUMER_MAX_ATTEMPTS": "2",
        "MICROSHOP_CONSUMER_RETRY_BASE_SECONDS": "0.1",
    }
    # Every port at once, so none repeats: the five services' and one nothing listens on.
    names = ("users", "orders", "payments", "notifications", "gateway")
    *taken, refused = free_ports(len(names) + 1)
    ports = dict(zip(names, taken, strict=True))
    refused_db = f"postgresql+psycopg://postgres:{DB_PASSWORD}@127.0.0.1:{refused}/gone"
    envs = {
        "users": {
            "MICROSHOP_DATABASE_URL": databases["users"],
            "MICROSHOP_JWT_PRIVATE_KEY": keys.private_pem,
        },
        "orders": {
            "MICROSHOP_DATABASE_URL": (
                f"mongodb://orders:{MONGO_PASSWORD}@{garbage_store.url.removeprefix('http://')}"
                "/?serverSelectionTimeoutMS=500"
            )
        },
        "payments": {"MICROSHOP_DATABASE_URL": databases["payments"]},
        "notifications": {"MICROSHOP_DATABASE_URL": refused_db},
    }
    assert set(names) == {*envs, "gateway"}
    services = {
        name: Service(
            name,
            ports[name],
            {**base_env, **env, "MICROSHOP_PORT": str(ports[name])},
            tmp_path / f"{name}.log",
        )
        for name, env in envs.items()
    }
    services["gateway"] = gateway = Service(
        "gateway",
        ports["gateway"],
        {
            **base_env,
            "MICROSHOP_PORT": str(ports["gateway"]),
            "MICROSHOP_USERS_URL": services["users"].url,
            "MICROSHOP_ORDERS_URL": services["orders"].url,
            "MICROSHOP_PAYMENTS_URL": upstream.url,
            "MICROSHOP_NOTIFICATIONS_URL": services["notifications"].url,
            "MICROSHOP_UPSTREAM_TIMEOUT_SECONDS": "2",
        },
        tmp_path / "gateway.log",
    )
    email = f"secrets-{uuid.uuid4().hex[:8]}@example.com"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        for service in services.values():
            service.start(wait=False)
        for service in services.values():
            wait_serving(service, ready=service.name in ("users", "payments"))
        refuse_inserts(databases["users"], "users")
        refuse_inserts(databases["payments"], "payments")

        with httpx.Client(base_url=gateway.url, timeout=10, headers=auth) as http:
            # The gateway's upstream: garbage, an oversized head, a truncated body, refused.
            statuses = []
            for reply in (
                b"\x00\xffgarbage that is not HTTP\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n"
                b'\r\n{"items": [',
            ):
                upstream.reply = reply
                statuses.append(
                    http.get("/api/v1/payments", params={"order_id": "o-1"}).status_code
                )
            upstream.close()
            statuses.append(http.get("/api/v1/payments").status_code)
            # An oversized head is the forwarder's to refuse or pass on (its own limits); the
            # others are failures whatever the forwarder.
            assert statuses[0] == 502 and statuses[2:] == [502, 503], statuses

            # users: a database error while storing the user's email, name and password hash;
            # and text PostgreSQL cannot store, in a body and in a login form.
            body = {"email": email, "password": USER_PASSWORD, "name": "Secret Keeper"}
            assert http.post("/api/v1/users", json=body).status_code == 500
            for_nul = {**body, "email": f"nul-{email}", "name": "A\u0000B"}
            assert http.post("/api/v1/users", json=for_nul).status_code in (422, 500)
            login = {"username": f"nul\u0000{email}", "password": USER_PASSWORD}
            assert http.post("/api/v1/auth/token", data=login).status_code in (401, 422, 500)

            # orders: its store answers garbage; notifications: its database refuses.
            order = {
                "items": [{"sku": "MUG-CLASSIC", "quantity": 1}],
                "payment_method": "pm_card_visa",
            }
            placed = http.post("/api/v1/orders", json=order, headers={"Idempotency-Key": "k-1"})
            assert placed.status_code == 503
            assert http.get("/api/v1/notifications").status_code == 503
            assert http.get("/readyz").status_code == 503

        # payments: a database error while recording a charge, retried, then dead-lettered.
        publish(
            bus_vhost,
            OrderCreated(
                order_id="o-secret",
                user_id="u-secrets",
                total_cents=1200,
                currency="EUR",
                payment_method="pm_card_visa",
            ),
        )
        wait_until(
            lambda: "dead-lettering" in services["payments"].log.read_text(),
            timeout=60,
            what="payments dead-lettering the event its database refused",
        )
        wait_until(lambda: "not reachable yet" in services["orders"].log.read_text(), timeout=60)
    finally:
        for service in services.values():
            service.stop()
        garbage_store.close()

    private_key_lines = keys.private_pem.strip().splitlines()[1:-1]
    secrets = {
        "the bearer token": token,
        "the token's signature": token.rsplit(".", 1)[1],
        "the user's password": USER_PASSWORD,
        "a password hash": "$argon2",
        "the JWT private key": "".join(private_key_lines),
        **{f"line {n} of the JWT private key": line for n, line in enumerate(private_key_lines)},
        "the database password": DB_PASSWORD,
        "the document store's password": MONGO_PASSWORD,
        "the broker credentials": f"guest:{BROKER_PASSWORD}@",
        "the failed statement's parameters (the email)": email,
    }
    exceptions = 0
    for name, service in services.items():
        text = service.log.read_text()
        for number, line in enumerate(text.splitlines(), 1):
            for what, secret in secrets.items():
                assert secret not in line, f"{what} in {name}.log:{number}: {line[:300]}"
            if line.startswith("{"):
                exceptions += "exception" in json.loads(line)
    # The failures above were logged with their tracebacks, so the scan read real ones.
    assert exceptions >= 3, exceptions
