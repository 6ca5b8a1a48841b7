"""Orders store benchmark: does a lookup cost the same with 10,000 orders stored as with 100?

Fills the orders store (the service's own `OrderStore`, nothing re-implemented) with N orders
— 20 per user, settled, their buyers notified, their events relayed, exactly the documents the
service writes — and
times the operations the service runs on every request or relay tick:

- `by id`: GET /orders/{id} (`orders.get`)
- `by (user, key)`: a replayed POST with the same Idempotency-Key (`orders.place` again)
- `relay idle scan`: the relay's poll when nothing is pending (`outbox.relay_batch`)
- `user's list`: GET /orders, first page of 20 (`orders.list_for_user`)
- `re-drive sweep`: the sweeper's look for orders that waited too long, none due (`redrives.sweep`)
- `place, relay, settle one`: what one order costs the store from POST to PAID

for each size on each backend, and prints the median milliseconds and the ratio of the largest
size to the smallest (the target: within 2x). Backends: `wire` starts a SecantusDB server (the
MongoDB wire protocol; the dev dependency `secantusdb`) on a free port; `standalone` is the
embedded SQLite store `make run` uses; `--url` measures any orders database URL.

    .venv/bin/python -m bench.run store                           # as make bench runs it
    .venv/bin/python -m bench.store_bench                         # both backends, 100 and 10,000
    .venv/bin/python -m bench.store_bench --backend wire --sizes 100 1000 --reps 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo

from bench.report import Figure, Report, Table
from microshop.events import PaymentSucceeded
from microshop.orders.domain import (
    CATALOG,
    RequestedItem,
    idempotency_id,
    price_order,
    request_fingerprint,
)
from microshop.orders.settings import OrdersSettings
from microshop.orders.store import OrderStore
from microshop.orders.store.backend import DocumentBackend
from microshop.orders.store.sqlite import SqliteBackend
from microshop.standalone import free_ports

ORDERS_PER_USER = 20
STANDALONE_SCHEME = "sqlite"  # what OrdersSettings' default URL and the standalone mode use
CLIENT_OPTIONS = OrdersSettings().mongo_client_options()  # the service's own client settings


@contextmanager
def wire_server() -> Iterator[str]:
    """A SecantusDB server on a free port in a temporary directory; its mongodb:// URL."""
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-"))
    port = free_ports(1)[0]
    program = Path(sys.executable).parent / "secantusd-py"
    process = subprocess.Popen(
        [str(program), "--host", "127.0.0.1", "--port", str(port), "--storage-path",
         str(workdir / "data"), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"mongodb://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                pymongo.MongoClient(url, serverSelectionTimeoutMS=500).admin.command("ping")
                break
            except pymongo.errors.PyMongoError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("secantusd-py did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def standalone_store() -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        yield f"{STANDALONE_SCHEME}:///{workdir / 'orders.db'}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Shopper:
    """Makes the requests the API would make for one user."""

    def __init__(self, store: OrderStore, user_id: str) -> None:
        self.store, self.user_id = store, user_id
        self.catalog = {p.sku: p for p in CATALOG}

    def place(self, key: str) -> tuple[dict[str, Any], bool]:
        items = [RequestedItem("MUG-CLASSIC", 1 + len(key) % 3)]
        return self.store.orders.place(
            user_id=self.user_id,
            idempotency_key=key,
            idempotency_id=idempotency_id(self.user_id, key),
            fingerprint=request_fingerprint(items, "pm_card_visa"),
            priced=price_order(items, self.catalog),
            payment_method="pm_card_visa",
            headers={},
        )


def settle(store: OrderStore, order: dict[str, Any]) -> None:
    event = PaymentSucceeded(
        payment_id=str(uuid.uuid4()),
        order_id=order["id"],
        user_id=order["user_id"],
        amount_cents=order["total_cents"],
        currency=order["currency"],
    )
    store.orders.apply_payment_outcome(
        order_id=order["id"],
        event_id=event.event_id,
        event_type=event.type,
        failure_code=None,
    )


_DOCUMENTS: list[dict[str, Any]] = []  # generated once per process, each size takes a prefix


def settled_documents(count: int) -> list[dict[str, Any]]:
    """`count` orders written, relayed and settled by the real document-store code on
    mongomock, 20 per user: the documents the service would hold after that many. mongomock
    scans for every query, so they are written 100 to a scratch store at a time. The smaller
    sizes are prefixes of the larger (order n is user n // 20's whatever the size), so each
    document is generated once per run: 10,000 of them take ~35 s."""
    for start in range(len(_DOCUMENTS) // 100 * 100, count, 100):
        scratch = OrderStore("mongomock://")
        scratch.prepare()
        fill_through_the_store(scratch, 100, first=start)
        _DOCUMENTS[start:] = list(scratch.backend.orders.find({}))
        scratch.close()
    return [dict(doc) for doc in _DOCUMENTS[:count]]


def fill_through_the_store(store: OrderStore, count: int, first: int = 0) -> None:
    for n in range(first, first + count):
        shopper = Shopper(store, f"user-{n // ORDERS_PER_USER}")
        order, _ = shopper.place(f"fill-{n}")
        settle(store, order)
        store.redrives.mark_notified(order["id"])  # finished, as the saga leaves it
    while store.outbox.relay_batch(lambda messages: None):
        pass


def fill(store: OrderStore, count: int) -> None:
    """The store holding `count` settled orders, exactly as the service writes them."""
    if isinstance(store.backend, SqliteBackend):
        # The service's own writes; only the fill skips the fsync per commit (not the figures).
        connection = store.backend.connection()
        connection.execute("PRAGMA synchronous=OFF")
        fill_through_the_store(store, count)
        connection.execute("PRAGMA synchronous=FULL")
        return
    docs = settled_documents(count)
    for start in range(0, len(docs), 500):
        store.backend.orders.insert_many(docs[start : start + 500])


def median_ms(operation: Callable[[], object], reps: int) -> float:
    """The median over `reps` samples of the mean ms per call, each sample a batch of calls
    lasting at least 5 ms, so that a 20 µs lookup is not a measure of the scheduler."""
    started = time.perf_counter()
    operation()  # warm caches and connections
    batch = max(1, int(0.005 / max(time.perf_counter() - started, 1e-6)))
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        samples.append((time.perf_counter() - started) / batch)
    return statistics.median(samples) * 1000


def measure(url: str, size: int, reps: int) -> dict[str, float]:
    store = OrderStore(url, f"bench_{uuid.uuid4().hex[:8]}", None, CLIENT_OPTIONS)
    store.prepare()
    try:
        fill(store, size)
        probe_user = f"user-{(size // 2) // ORDERS_PER_USER}"
        probe = store.orders.list_for_user(probe_user, 1, 0)[0][0]
        shopper = Shopper(store, probe["user_id"])
        fresh = iter(range(10**9))

        def one_order() -> None:
            order, _ = shopper.place(f"new-{next(fresh)}")
            store.outbox.relay_batch(lambda messages: None)
            settle(store, order)

        return {
            "by id": median_ms(lambda: store.orders.get(probe["user_id"], probe["id"]), reps),
            "by (user, key)": median_ms(lambda: shopper.place(probe["idempotency_key"]), reps),
            "relay idle scan": median_ms(lambda: store.outbox.relay_batch(lambda m: None), reps),
            "user's list": median_ms(
                lambda: store.orders.list_for_user(probe["user_id"], ORDERS_PER_USER, 0), reps
            ),
            "re-drive sweep": median_ms(lambda: store.redrives.sweep(300.0), reps),
            "place, relay, settle one": median_ms(one_order, reps),
        }
    finally:
        backend = store.backend
        if isinstance(backend, DocumentBackend):
            backend.client.drop_database(backend.database.name)
        store.close()


def report(backend: str, sizes: list[int], figures: dict[int, dict[str, float]]) -> str:
    small, large = sizes[0], sizes[-1]
    lines = [
        f"{backend}: median ms per operation",
        f"| operation | {' | '.join(f'{s:,} orders' for s in sizes)} | {large:,} vs {small:,} |",
        "|---|" + "---:|" * (len(sizes) + 1),
    ]
    for op in figures[small]:
        cells = " | ".join(f"{figures[s][op]:.2f}" for s in sizes)
        ratio = figures[large][op] / figures[small][op]
        lines.append(f"| {op} | {cells} | {ratio:.2f}x |")
    return "\n".join(lines)


def run(quick: bool = False) -> Report:
    """The Report for bench/run.py: both backends at 100, 1,000 and 10,000 orders."""
    sizes = [100, 2_000] if quick else [100, 1_000, 10_000]
    reps = 10 if quick else 20
    targets = [("wire (SecantusDB)", wire_server), ("standalone (SQLite)", standalone_store)]
    results: dict[str, dict[int, dict[str, float]]] = {}
    tables: list[Table] = []
    points: dict[str, list[dict[str, float]]] = {}
    for name, opener in targets:
        results[name] = {}
        for size in sizes:
            with opener() as url:
                results[name][size] = measure(url, size, reps)
        small, large = sizes[0], sizes[-1]
        rows = [
            [op, *(results[name][s][op] for s in sizes),
             f"{results[name][large][op] / results[name][small][op]:.2f}x"]
            for op in results[name][small]
        ]  # fmt: skip
        tables.append(
            Table(
                f"{name}: median ms per operation",
                ["operation", *(f"{s:,} orders" for s in sizes), f"{large:,} vs {small:,}"],
                rows,
            )
        )
        for op in results[name][small]:
            points.setdefault(op, []).extend(
                {"x": float(s), name: results[name][s][op]} for s in sizes
            )
    worst = max(
        results[n][sizes[-1]][op] / results[n][sizes[0]][op]
        for n in results
        for op in results[n][sizes[0]]
    )
    return Report(
        name="store",
        title="Orders store as it fills (target: within 2x from 100 to 10,000 orders)",
        tables=tables,
        figure=Figure(
            "Orders store: median ms per operation against orders stored",
            "orders stored",
            [(name, f"{name}: ms", True) for name, _ in targets],
            points,
        ),
        notes=[f"largest ratio, largest size vs smallest: {worst:.2f}x (target <= 2x)"],
        data={"sizes": sizes, "reps": reps, "results": results},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["wire", "standalone", "both"], default="both")
    parser.add_argument("--url", help="measure this orders database URL instead")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    targets: list[tuple[str, Callable[[], Any]]] = []
    if args.url:
        targets.append((args.url, lambda: _given(args.url)))
    else:
        if args.backend in ("wire", "both"):
            targets.append(("wire (SecantusDB, mongodb://)", wire_server))
        if args.backend in ("standalone", "both"):
            targets.append((f"standalone ({STANDALONE_SCHEME}:///)", standalone_store))
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name, opener in targets:
        results[name] = {}
        for size in sizes:
            with opener() as url:
                results[name][size] = measure(url, size, args.reps)
            print(f"  {name}: {size:,} orders measured", file=sys.stderr, flush=True)
        if not args.json:
            print(report(name, sizes, results[name]) + "\n", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
