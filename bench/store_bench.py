"""Orders store benchmark: does a lookup cost the same with 10,000 orders stored as with 100?

Fills the orders store (the service's own `OrderStore`, nothing re-implemented) with N orders
— 20 per user, settled, their events relayed, exactly the documents the service writes — and
times the operations the service runs on every request or relay tick:

- `by id`: GET /orders/{id} (`store.get`)
- `by (user, key)`: a replayed POST with the same Idempotency-Key (`store.place` again)
- `relay idle scan`: the relay's poll when nothing is pending (`store.outbox.relay_batch`)
- `relay one order`: place a new order, relay its event, settle it (what one order costs)
- `user's list`: GET /orders, first page of 20 (`store.list_for_user`)

for each size on each backend, and prints the median milliseconds and the ratio of the largest
size to the smallest (the target: within 2x). Backends: `wire` starts a SecantusDB server (the
MongoDB wire protocol; the dev dependency `secantusdb`) on a free port; `standalone` is the
embedded store `make run` uses; `--url` measures any orders database URL.

    .venv/bin/python bench/store_bench.py                       # both backends, 100 and 10,000
    .venv/bin/python bench/store_bench.py --backend wire --sizes 100 1000 --reps 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
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

from microshop.events import PaymentSucceeded
from microshop.orders.domain import (
    CATALOG,
    RequestedItem,
    idempotency_id,
    price_order,
    request_fingerprint,
)
from microshop.orders.store import OrderStore

ORDERS_PER_USER = 20
STANDALONE_SCHEME = "montydb"  # what OrdersSettings' default URL uses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def wire_server() -> Iterator[str]:
    """A SecantusDB server on a free port in a temporary directory; its mongodb:// URL."""
    workdir = Path(tempfile.mkdtemp(prefix="store-bench-"))
    port = _free_port()
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
        yield f"{STANDALONE_SCHEME}:///{workdir / 'orders'}"
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
        order_id=order["id"], event_id=event.event_id, event_type=event.type, failure_code=None
    )


def settled_documents(count: int) -> list[dict[str, Any]]:
    """`count` orders written, relayed and settled by the real store code (on mongomock, fast),
    20 per user: the documents the service would hold after taking that many orders."""
    scratch = OrderStore("mongomock://")
    for n in range(count):
        shopper = Shopper(scratch, f"user-{n // ORDERS_PER_USER}")
        order, _ = shopper.place(f"fill-{n}")
        settle(scratch, order)
    while scratch.outbox.relay_batch(lambda messages: None):
        pass
    docs = list(scratch.backend.orders.find({}))
    scratch.close()
    return docs


def median_ms(operation: Callable[[], object], reps: int) -> float:
    operation()  # warm caches and connections
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(url: str, size: int, reps: int) -> dict[str, float]:
    store = OrderStore(url, f"bench_{uuid.uuid4().hex[:8]}")
    store.prepare()
    try:
        docs = settled_documents(size)
        for start in range(0, len(docs), 500):
            store.backend.orders.insert_many(docs[start : start + 500])
        probe = docs[len(docs) // 2]
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
            "relay one order": median_ms(one_order, reps),
            "user's list": median_ms(
                lambda: store.orders.list_for_user(probe["user_id"], ORDERS_PER_USER, 0), reps
            ),
        }
    finally:
        backend = store.backend
        backend.client.drop_database(backend.database.name) if not backend.embedded else None
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
