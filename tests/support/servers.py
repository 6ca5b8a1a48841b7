"""Private servers a test may stop, restart, kill or freeze: PostgreSQL, RabbitMQ, SecantusDB.

The machine's PostgreSQL and RabbitMQ are shared by every run and must never be stopped by a
test; a test that needs a server to fail starts one of these on a free port in a temporary
directory, and the fixture that made it shuts it down. With CI=true a missing server program
fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions
import psycopg
import pymongo
import pymongo.errors
import pytest

from microshop.standalone import free_ports


def free_port() -> int:
    return free_ports(1)[0]


def unavailable(what: str, exc: Exception) -> None:
    """Skip the test, saying what to start; with CI=true fail it instead."""
    message = f"{what} is not reachable ({exc!r}); start it (see README) to run integration tests"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _wait(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# -- PostgreSQL ---------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, trust auth).

    PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
    `postgres` system user and every server command runs as that user.
    """

    bindir: Path
    datadir: Path
    port: int
    run_as: str | None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.datadir.parent / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def initdb(self) -> None:
        done = self._run(
            "initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
        # A test server: no fsync (a crash of the machine is not among our faults), small, local.
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.datadir}'\nfsync = off\n"
                "max_connections = 200\nshared_buffers = 32MB\n"
            )

    def start(self) -> None:
        done = self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "60", "start"
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-3000:] if self.log.exists() else ""
            pytest.fail(f"private PostgreSQL did not start:\n{done.stderr}\n{tail}", pytrace=False)

    def stop(self, mode: str = "fast") -> None:
        """`fast` closes every session and shuts down cleanly; `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def postmaster_pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        return None

    def accepts(self) -> bool:
        try:
            psycopg.connect(self.admin_url, connect_timeout=1).close()
        except psycopg.Error:
            return False
        return True

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def private_postgres_server():
    """Start a private PostgreSQL cluster; stop it and remove its files at exit."""
    bindir = _postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL's server programs (initdb, pg_ctl)", FileNotFoundError("pg_ctl"))
    assert bindir is not None
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            unavailable("a 'postgres' user to run a private PostgreSQL as (root may not)", exc)
        run_as = "postgres"
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # `postgres`.
    top = Path(tempfile.mkdtemp(prefix="microshop-pg-"))
    datadir = top / "data"
    datadir.mkdir()
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        for path in (top, datadir):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = PrivatePostgres(bindir, datadir, free_port(), run_as)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(top, ignore_errors=True)


# -- SecantusDB (a MongoDB wire-protocol server) ------------------------------------------------


@dataclass
class SecantusServer:
    """A SecantusDB server (`secantusd-py`): the real MongoDB wire protocol over WiredTiger.

    Its data survives `stop()`/`kill()` and `start()` again, like a mongod's. Test commands
    (`configureFailPoint`) are on, so a test can make chosen commands fail or hang.
    """

    storage: Path
    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, wait: bool = True, timeout: float = 90) -> None:
        program = Path(sys.executable).parent / "secantusd-py"
        self.process = subprocess.Popen(
            [
                str(program), "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", str(self.storage), "--log-level", "WARNING",
                "--enable-test-commands", "--cache-size", "128M",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        if wait:
            self.wait_ready(timeout)

    def accepts(self) -> bool:
        client: pymongo.MongoClient = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()
        return True

    def wait_ready(self, timeout: float = 90) -> None:
        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"secantusd-py exited:\n{self.log.read_text()[-3000:]}")
            return self.accepts()

        if not _wait(up, timeout, 0.2):
            pytest.fail(f"secantusd-py not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): WiredTiger checkpoints and closes."""
        self._signal(signal.SIGTERM, wait=30)

    def kill(self) -> None:
        """A crash (SIGKILL): what was acknowledged is in WiredTiger's log and comes back."""
        self._signal(signal.SIGKILL, wait=30)

    def _signal(self, signum: int, wait: float) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signum)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def fail_point(self, **data: object) -> None:
        """`configureFailPoint failCommand` with `data`; mode from `mode=` (default alwaysOn)."""
        mode = data.pop("mode", "alwaysOn")
        client: pymongo.MongoClient = pymongo.MongoClient(self.url, serverSelectionTimeoutMS=5000)
        try:
            client.admin.command("configureFailPoint", "failCommand", mode=mode, data=data)
        finally:
            client.close()


@contextlib.contextmanager
def secantus_server(workdir: Path):
    if not (Path(sys.executable).parent / "secantusd-py").exists():
        unavailable("secantusd-py (the dev dependency secantusdb)", FileNotFoundError())
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    server = SecantusServer(workdir / "data", free_port(), workdir / "secantusd.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()


# -- RabbitMQ -----------------------------------------------------------------------------------

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

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(RABBITMQ_SCRIPTS / "rabbitmqctl"), "-q", "-n", self.name, *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout

    def queues(self) -> dict[str, tuple[int, int]]:
        """Every queue on the node: (messages ready, delivered but not acknowledged)."""
        columns = ("name", "messages_ready", "messages_unacknowledged")
        listed = json.loads(self.ctl("list_queues", "--formatter", "json", *columns) or "[]")
        return {
            q["name"]: (int(q["messages_ready"]), int(q["messages_unacknowledged"])) for q in listed
        }

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

    def wait_ready(self, timeout: float = 90) -> None:
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

    def kill(self) -> None:
        """The whole node dies at once (SIGKILL to its process group); `start()` brings it
        back with its durable queues and persistent messages."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # epmd outlives the node and remembers its name for a moment; a restart just waits.

    def shutdown(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ctl("stop", timeout=20)
            self.process.wait(timeout=20)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.process.pid, signal.SIGKILL)  # our own session: script and beam
            self.process.wait()


@contextlib.contextmanager
def private_rabbitmq_node(workdir: Path):
    """A RabbitMQ node of the test's own, which it may stop, kill and restart at will."""
    server = RABBITMQ_SCRIPTS / "rabbitmq-server"
    if not server.exists():
        unavailable(f"rabbitmq-server in {RABBITMQ_SCRIPTS}", FileNotFoundError(str(server)))
    home = workdir / "home"
    home.mkdir(parents=True)
    cookie = home / ".erlang.cookie"  # a cookie of its own: root's CLI talks to it, nothing else
    cookie.write_text(uuid.uuid4().hex)
    cookie.chmod(0o400)
    (workdir / "env.conf").write_text("")  # ignore /etc/rabbitmq/rabbitmq-env.conf (its NODENAME)
    (workdir / "enabled_plugins").write_text("[].\n")  # no management plugin: boots in seconds
    port, dist_port = free_ports(2)  # at once: asked for one by one, two could be the same
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
