"""The embedded store's queries read an index, never the whole orders table (issue 10.7: the
store must not slow down as it fills). SQLite's EXPLAIN QUERY PLAN says `SCAN orders` for a
table scan and `SEARCH orders USING … INDEX` for an index (https://sqlite.org/eqp.html)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from microshop.orders.store import OrderStore
from microshop.orders.store.redrive import SQLITE_DUE
from microshop.orders.store.sqlite import COLUMNS, SqliteBackend

# Every statement the store runs per request, relay tick or sweep, with its parameters' shape.
QUERIES = [
    (f"SELECT {COLUMNS} FROM orders WHERE id = ? AND user_id = ?", ("o", "u")),
    (f"SELECT {COLUMNS} FROM orders WHERE key = ?", ("k",)),
    ("SELECT count(*) FROM orders WHERE user_id = ?", ("u",)),
    (
        f"SELECT {COLUMNS} FROM orders WHERE user_id = ? ORDER BY created_at DESC, id DESC"
        " LIMIT ? OFFSET ?",
        ("u", 20, 0),
    ),
    ("SELECT status FROM orders WHERE id = ?", ("o",)),
    ("SELECT created_at FROM orders WHERE id = ?", ("o",)),
    ("SELECT 1 FROM processed_events WHERE order_id = ? AND event_id = ?", ("o", "e")),
    (
        "SELECT seq, event_id, payload, headers FROM outbox WHERE lease_until <= ?"
        " ORDER BY lease_until, seq LIMIT ?",
        (0, 100),
    ),
]


@pytest.fixture
def backend(tmp_path: Path) -> SqliteBackend:
    store = OrderStore(f"sqlite:///{tmp_path / 'orders.db'}")
    store.prepare()
    assert isinstance(store.backend, SqliteBackend)
    return store.backend


@pytest.mark.parametrize(("query", "parameters"), QUERIES)
def test_every_query_of_the_store_reads_an_index(
    backend: SqliteBackend, query: str, parameters: tuple
) -> None:
    plan = " / ".join(
        row[3] for row in backend.connection().execute(f"EXPLAIN QUERY PLAN {query}", parameters)
    )
    assert not re.search(r"\bSCAN (orders|outbox|processed_events)\b", plan), plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # the index gives the order
    assert "SEARCH" in plan, plan


def test_the_sweep_reads_only_the_due_range_whatever_the_orders_table_holds(
    backend: SqliteBackend,
) -> None:
    """Finished orders are most of the table: the sweep starts from the due times' index and
    looks each due order up by id, never walking the orders by status."""
    plan = [
        row[3]
        for row in backend.connection().execute(
            f"EXPLAIN QUERY PLAN {SQLITE_DUE}", (0.0, "PENDING", "PAID", 100)
        )
    ]
    assert plan[0].startswith("SEARCH r USING INDEX redrives_due"), plan
    assert not any("orders_by_status" in step or "TEMP B-TREE" in step for step in plan), plan
