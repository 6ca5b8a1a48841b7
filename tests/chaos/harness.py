"""The chaos suite's parts: an order load that retries like a careful client, faults, and checks.

Each fault is one phase: orders are placed through the gateway before, during and after the
fault; the fault is healed; the phase then waits (bounded) until every order it accepted is
final and, if PAID, notified, and reports what it saw. A client retries a failed placement with
the same Idempotency-Key, so a retry is never a second order.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import psycopg
import pymongo

from tests.support.servers import PrivatePostgres, RabbitNode, SecantusServer
from tests.support.shop import Shop

EXPECTED = {
    "pm_card_visa": ("PAID", None),
    "pm_card_mastercard": ("PAID", None),
    "pm_card_chargeDeclined": ("PAYMENT_FAILED", "card_declined"),
    "pm_card_chargeDeclinedInsufficientFunds": ("PAYMENT_FAILED", "insufficient_funds"),
}
METHODS = list(EXPECTED)
SKUS = ["MUG-CLASSIC", "TEE-LOGO-M", "HOODIE-GREY", "STICKERS-5", "NOTEBOOK-A5"]
FINAL = {"PAID", "PAYMENT_FAILED"}


def hold(seconds: float) -> None:
    """Keep a fault in place for its duration: the schedule is wall-clock time by definition,
    so this is the one place the suite sleeps rather than polls."""
    time.sleep(seconds)


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@dataclass
class Servers:
    """What the shop runs on, all private to the suite so it may break them."""

    postgres: PrivatePostgres
    rabbitmq: RabbitNode
    mongo: SecantusServer
    orders_database: str
    orders_app_name: str


@dataclass
class Placement:
    """One order a client wants placed, and what happened while it tried."""

    phase: str
    key: str
    buyer: int
    method: str
    items: list[dict]
    order_id: str | None = None
    errors: Counter[str] = field(default_factory=Counter)
    gave_up: bool = False


class Load:
    """Buyers placing orders through the gateway, each retried with its key until accepted."""

    def __init__(self, gateway: str, workers: int = 6, give_up_after: float = 150.0) -> None:
        self.gateway = gateway
        self.give_up_after = give_up_after
        self.tokens: list[str] = []
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="buyer")
        self.counter = itertools.count()
        self.run_id = uuid.uuid4().hex[:8]

    def sign_up(self, buyers: int = 4) -> None:
        with httpx.Client(base_url=self.gateway, timeout=30) as client:
            for _ in range(buyers):
                email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
                created = client.post(
                    "/api/v1/users",
                    json={"email": email, "password": "s3cret-pass", "name": "Buyer"},
                )
                assert created.status_code == 201, created.text
                token = client.post(
                    "/api/v1/auth/token", data={"username": email, "password": "s3cret-pass"}
                )
                assert token.status_code == 200, token.text
                self.tokens.append(token.json()["access_token"])

    def placement(self, phase: str, method: str | None = None) -> Placement:
        i = next(self.counter)
        return Placement(
            phase=phase,
            key=f"chaos-{self.run_id}-{i}",
            buyer=i % len(self.tokens),
            method=method or METHODS[i % len(METHODS)],
            items=[{"sku": SKUS[i % len(SKUS)], "quantity": 1 + i % 3}],
        )

    def place(self, placement: Placement) -> Placement:
        """POST the order until it is accepted (202, or 200 for a replay), or give up."""
        deadline = time.monotonic() + self.give_up_after
        delay = 0.2
        headers = {
            "Authorization": f"Bearer {self.tokens[placement.buyer]}",
            "Idempotency-Key": placement.key,
        }
        body = {"items": placement.items, "payment_method": placement.method}
        # A fresh connection per try: a careful client does not reuse a connection that failed.
        while time.monotonic() < deadline:
            try:
                response = httpx.post(
                    f"{self.gateway}/api/v1/orders", json=body, headers=headers, timeout=15
                )
            except httpx.HTTPError as exc:
                placement.errors[type(exc).__name__] += 1
            else:
                if response.status_code in (200, 201, 202):
                    placement.order_id = response.json()["id"]
                    return placement
                placement.errors[str(response.status_code)] += 1
                if response.status_code < 500 and response.status_code != 429:
                    break  # the request itself is wrong: retrying cannot help
            time.sleep(delay)
            delay = min(delay * 2, 3.0)
        placement.gave_up = True
        return placement

    def spread(self, phase: str, count: int, over: float) -> Future[list[Placement]]:
        """Place `count` orders at an even pace over `over` seconds, in the background."""

        def run() -> list[Placement]:
            started = time.monotonic()
            futures = []
            for n in range(count):
                wait = started + over * n / max(count, 1) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # pacing the load, not waiting for a condition
                futures.append(self.pool.submit(self.place, self.placement(phase)))
            return [f.result() for f in futures]

        pacer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pacer")
        future = pacer.submit(run)
        pacer.shutdown(wait=False)
        return future

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class Ledger:
    """What the shop's databases and queues say, read directly (not through the API)."""

    def __init__(self, shop: Shop, servers: Servers) -> None:
        self.shop, self.servers = shop, servers
        self._mongo: pymongo.MongoClient = pymongo.MongoClient(
            servers.mongo.url, serverSelectionTimeoutMS=2000, tz_aware=True
        )

    @property
    def orders(self):
        return self._mongo[self.servers.orders_database]["orders"]

    def _sql(self, service: str, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(plain(self.shop.database_urls[service]), connect_timeout=3) as c:
            return c.execute(query, params).fetchall()

    def order_states(self, ids: Sequence[str]) -> dict[str, dict]:
        docs = self.orders.find(
            {"id": {"$in": list(ids)}},
            {"id": 1, "status": 1, "failure_code": 1, "outbox": 1},
        )
        return {d["id"]: d for d in docs}

    def payments(self, ids: Sequence[str]) -> dict[str, list[tuple[str, str | None]]]:
        found: dict[str, list[tuple[str, str | None]]] = {}
        rows = self._sql(
            "payments",
            "SELECT order_id, status, failure_code FROM payments WHERE order_id = ANY(%s)",
            list(ids),
        )
        for order_id, status, failure in rows:
            found.setdefault(order_id, []).append((status, failure))
        return found

    def notifications(self, ids: Sequence[str]) -> Counter[str]:
        rows = self._sql(
            "notifications",
            "SELECT order_id, count(*) FROM notifications WHERE order_id = ANY(%s) "
            "GROUP BY order_id",
            list(ids),
        )
        return Counter({order_id: int(n) for order_id, n in rows})

    def settled(self, placements: Sequence[Placement]) -> bool:
        """Every accepted order final, and notified if PAID (whatever the databases can say)."""
        ids = [p.order_id for p in placements if p.order_id]
        if not ids:
            return True
        try:
            states = self.order_states(ids)
            if len(states) < len(ids) or any(s["status"] not in FINAL for s in states.values()):
                return False
            paid = [i for i, s in states.items() if s["status"] == "PAID"]
            notified = self.notifications(paid)
        except (pymongo.errors.PyMongoError, psycopg.Error):
            return False
        return all(notified[i] >= 1 for i in paid)

    def outbox_backlog(self) -> dict[str, int]:
        return {
            "orders": self.orders.count_documents({"outbox.0": {"$exists": True}}),
            "payments": self._sql("payments", "SELECT count(*) FROM outbox")[0][0],
            "notifications": self._sql("notifications", "SELECT count(*) FROM outbox")[0][0],
        }

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        return self.servers.rabbitmq.queues()

    def close(self) -> None:
        self._mongo.close()


@dataclass
class Outcome:
    """One row of the table."""

    fault: str
    orders: int
    client_errors: Counter[str]
    recovered_in: float | None
    lost: int
    inconsistent: int
    duplicated_payments: int
    duplicated_notifications: int
    stuck: int
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.inconsistent
            or self.duplicated_payments
            or self.duplicated_notifications
            or self.stuck
        ) and (self.recovered_in is not None)


def judge(
    fault: str, placements: Sequence[Placement], ledger: Ledger, recovered_in: float | None
) -> Outcome:
    errors: Counter[str] = Counter()
    for p in placements:
        errors.update(p.errors)
    accepted = [p for p in placements if p.order_id]
    ids = [p.order_id for p in accepted if p.order_id]
    states = ledger.order_states(ids)
    payments = ledger.payments(ids)
    notified = ledger.notifications(ids)
    lost = sum(1 for p in placements if p.gave_up)  # the client could never place it
    inconsistent = stuck = dup_payments = dup_notifications = 0
    notes: list[str] = []
    for p in accepted:
        assert p.order_id is not None
        state = states.get(p.order_id)
        if state is None:
            lost += 1  # accepted, then gone
            notes.append(f"order {p.order_id} accepted but not in the orders database")
            continue
        charged = payments.get(p.order_id, [])
        dup_payments += max(len(charged) - 1, 0)
        want_status, want_failure = EXPECTED[p.method]
        if state["status"] not in FINAL:
            stuck += 1
            continue
        if (state["status"], state.get("failure_code")) != (want_status, want_failure):
            inconsistent += 1
            notes.append(f"order {p.order_id} ({p.method}) ended {state['status']}")
        want_payment = "SUCCEEDED" if want_status == "PAID" else "FAILED"
        if not charged or charged[0][0] != want_payment:
            inconsistent += 1
            notes.append(f"order {p.order_id} {state['status']} with payments {charged}")
        n = notified[p.order_id]
        if state["status"] == "PAID":
            if n == 0:
                stuck += 1  # the saga's last step never happened
                notes.append(f"order {p.order_id} PAID but never notified")
            dup_notifications += max(n - 1, 0)
        else:
            dup_notifications += n  # a failed payment notifies no one
    return Outcome(
        fault,
        len(placements),
        errors,
        recovered_in,
        lost,
        inconsistent,
        dup_payments,
        dup_notifications,
        stuck,
        notes,
    )


def settle(ledger: Ledger, placements: Sequence[Placement], healed_at: float, budget: float):
    """Seconds from the fault's end until its orders are all final (None if not in budget)."""
    deadline = healed_at + budget
    while time.monotonic() < deadline:
        if ledger.settled(placements):
            return max(time.monotonic() - healed_at, 0.0)
        time.sleep(0.5)
    return None


# -- faults -------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A named fault: `run(context)` breaks something, heals it and returns the phase's orders
    and the monotonic time at which it was healed."""

    name: str
    run: Callable[[Chaos], tuple[list[Placement], float]]


@dataclass
class Chaos:
    shop: Shop
    servers: Servers
    load: Load
    ledger: Ledger
    orders_per_phase: int
    recovery_budget: float
    log: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.log.append(line)
        print(line, flush=True)

    def with_load(
        self, name: str, lead_in: float, duration: float, follow: float, breaks, heals
    ) -> tuple[list[Placement], float]:
        """Orders paced over lead-in + fault + follow-up; `breaks()` then `heals()`."""
        batch = self.load.spread(name, self.orders_per_phase, lead_in + duration + follow)
        hold(lead_in)
        breaks()
        hold(duration)
        heals()
        healed_at = time.monotonic()
        return batch.result(), healed_at


def database_down(seconds: float) -> Fault:
    """The SQL services' PostgreSQL stops (every session closed) and comes back."""

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        pg = chaos.servers.postgres
        return chaos.with_load(
            f"PostgreSQL down {seconds:g} s",
            2,
            seconds,
            3,
            lambda: pg.stop("fast"),
            pg.start,
        )

    return Fault(f"PostgreSQL down {seconds:g} s", run)


def orders_database_down(seconds: float) -> Fault:
    """The orders service's MongoDB server dies (SIGKILL) and restarts on its data."""

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        mongo = chaos.servers.mongo
        return chaos.with_load(
            f"orders DB down {seconds:g} s", 2, seconds, 3, mongo.kill, mongo.start
        )

    return Fault(f"orders DB down {seconds:g} s", run)


def broker_killed(seconds: float) -> Fault:
    """The RabbitMQ node is SIGKILLed and restarted on its data."""

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        node = chaos.servers.rabbitmq

        def restart() -> None:
            node.start()
            node.wait_ready()

        return chaos.with_load(f"RabbitMQ killed {seconds:g} s", 2, seconds, 3, node.kill, restart)

    return Fault(f"RabbitMQ killed {seconds:g} s", run)


def frozen(service: str, seconds: float) -> Fault:
    """The service hangs (SIGSTOP) with its connections open, then resumes (SIGCONT)."""

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        process = chaos.shop.services[service]
        return chaos.with_load(
            f"SIGSTOP {service} {seconds:g} s", 2, seconds, 3, process.freeze, process.thaw
        )

    return Fault(f"SIGSTOP {service} {seconds:g} s", run)


def gateway_killed() -> Fault:
    """The gateway is SIGKILLed while requests are in flight, and started again."""

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        gateway = chaos.shop.services["gateway"]

        def restart() -> None:
            gateway.start(wait=False)

        return chaos.with_load("gateway SIGKILL in flight", 2, 0.5, 4, gateway.kill, restart)

    return Fault("gateway SIGKILL in flight", run)


def _unacked(chaos: Chaos, queue: str) -> int:
    return chaos.servers.rabbitmq.queues().get(queue, (0, 0))[1]


def _poll(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def killed_in_sql_transaction(service: str, table: str, queue: str) -> Fault:
    """SIGKILL of a SQL consumer while its handler's transaction is open and has written.

    The suite locks `table` (EXCLUSIVE: reads go on, writes wait), places one order, and waits
    until PostgreSQL shows the service's backend blocked on its INSERT into that table with a
    transaction id (so it has written its inbox row already) while the broker shows the message
    delivered and unacknowledged. Then the process is killed, the lock released, and PostgreSQL
    rolls the orphaned transaction back.
    """
    name = f"SIGKILL {service} in its transaction"

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        process = chaos.shop.services[service]
        url = plain(chaos.shop.database_urls[service])
        database = url.rsplit("/", 1)[1]
        # A second, autocommit session watches: a transaction sees one frozen snapshot of
        # pg_stat_activity.
        with psycopg.connect(url) as locker, psycopg.connect(url, autocommit=True) as watcher:
            locker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            probe = chaos.load.place(chaos.load.placement(name, method="pm_card_visa"))
            blocked = _poll(
                lambda: watcher.execute(
                    "SELECT pid, backend_xid::text, left(query, 40) FROM pg_stat_activity "
                    "WHERE datname = %s AND wait_event_type = 'Lock' AND query ILIKE %s "
                    "AND backend_xid IS NOT NULL",
                    (database, f"INSERT INTO {table}%"),
                ).fetchall(),
                60,
                f"{service}'s handler to block inside its transaction",
            )
            _poll(lambda: _unacked(chaos, queue) >= 1, 30, f"an unacked delivery on {queue}")
            process.kill()
            chaos.say(f"  {name}: its backend {blocked}, delivery unacked on {queue}; killed")
            locker.rollback()
        process.start(wait=False)
        healed_at = time.monotonic()
        rest = chaos.load.spread(name, chaos.orders_per_phase - 1, 3).result()
        return [probe, *rest], healed_at

    return Fault(name, run)


def killed_in_orders_update() -> Fault:
    """SIGKILL of orders while its handler's conditional update is in flight on the server.

    Payments is paused while one order is placed and relayed; then a failpoint makes the
    server hold the next `update` from orders (the settle: nothing else updates on a quiet
    shop) for 8 s before running it. Payments resumes, the outcome reaches orders, and once the
    broker shows it delivered and unacknowledged with the order still PENDING, orders is
    killed. The held update then lands with no process left to ack: the restarted service
    gets the message again.
    """
    name = "SIGKILL orders in its update"

    def run(chaos: Chaos) -> tuple[list[Placement], float]:
        orders, payments = chaos.shop.services["orders"], chaos.shop.services["payments"]
        payments.freeze()
        try:
            probe = chaos.load.place(chaos.load.placement(name, method="pm_card_visa"))
            assert probe.order_id is not None, probe
            _poll(
                lambda: chaos.ledger.orders.count_documents(
                    {"id": probe.order_id, "outbox.0": {"$exists": False}}
                ),
                60,
                "the probe's order.created to be relayed",
            )
            chaos.servers.mongo.fail_point(
                mode={"times": 1},
                failCommands=["update"],
                appName=chaos.servers.orders_app_name,
                blockConnection=True,
                blockTimeMS=8000,
            )
        finally:
            payments.thaw()
        _poll(
            lambda: _unacked(chaos, "orders.payment-events") >= 1,
            60,
            "the payment outcome delivered to orders",
        )
        status = chaos.ledger.order_states([probe.order_id])[probe.order_id]["status"]
        orders.kill()
        chaos.say(f"  {name}: outcome unacked, order {status}, update held by the server; killed")
        orders.start(wait=False)
        healed_at = time.monotonic()
        rest = chaos.load.spread(name, chaos.orders_per_phase - 1, 3).result()
        return [probe, *rest], healed_at

    return Fault(name, run)


SCHEDULES: dict[str, dict] = {
    # `make chaos`: the schedule.
    "full": {
        "orders_per_phase": 40,
        "recovery_budget": 90.0,
        "timeout": 3600,
        "faults": lambda: [
            database_down(30),
            orders_database_down(20),
            broker_killed(15),
            killed_in_sql_transaction("payments", "outbox", "payments.order-events"),
            killed_in_sql_transaction(
                "notifications", "notifications", "notifications.payment-events"
            ),
            killed_in_orders_update(),
            frozen("orders", 15),
            frozen("payments", 15),
            gateway_killed(),
        ],
    },
    # `make test`: one fault of each kind, shorter, on fewer orders. The database outage still
    # outlasts the consumers' whole retry budget (5 tries, 0.5 s doubling: 7.5 s).
    "short": {
        "orders_per_phase": 8,
        "recovery_budget": 45.0,
        "timeout": 900,
        "faults": lambda: [
            database_down(9),
            orders_database_down(4),
            broker_killed(3),
            killed_in_sql_transaction("payments", "outbox", "payments.order-events"),
            frozen("orders", 3),
            gateway_killed(),
        ],
    },
}


def table(outcomes: Sequence[Outcome]) -> str:
    header = (
        "fault",
        "orders",
        "client errors seen",
        "time to recover",
        "orders lost",
        "inconsistent",
        "duplicated payments",
        "duplicated notifications",
        "stuck",
    )
    rows = [header]
    for o in outcomes:
        errors = sum(o.client_errors.values())
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(o.client_errors.items()))
        rows.append(
            (
                o.fault,
                str(o.orders),
                f"{errors} ({detail})" if errors else "0",
                "never" if o.recovered_in is None else f"{o.recovered_in:.1f} s",
                str(o.lost),
                str(o.inconsistent),
                str(o.duplicated_payments),
                str(o.duplicated_notifications),
                str(o.stuck),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
