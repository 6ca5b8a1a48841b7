"""The benchmarks run against today's code: `make bench` is not part of `make test`, so a
store API a benchmark still calls and the services no longer have would otherwise show only
there (the store benchmark once failed on a removed method). Each is run tiny, in-process."""

from __future__ import annotations

from pathlib import Path

from bench.saga_bench import RawBus, raw_ceiling, raw_sqlite_stores
from bench.store_bench import measure


def test_the_store_benchmark_times_every_operation_on_the_embedded_store(tmp_path: Path) -> None:
    figures = measure(f"sqlite:///{tmp_path / 'orders.db'}", 40, 1)
    assert set(figures) == {
        "by id",
        "by (user, key)",
        "relay idle scan",
        "user's list",
        "re-drive sweep",
        "place, relay, settle one",
    }
    assert all(ms > 0 for ms in figures.values())


def test_the_saga_benchmarks_sqlite_ceiling_settles_every_order(tmp_path: Path) -> None:
    assert raw_ceiling(raw_sqlite_stores(tmp_path), RawBus(None), 2, 20) > 0
