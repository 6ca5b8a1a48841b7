"""The orders store contract on the in-process backends: mongomock (what unit tests use) and the
embedded SQLite store (what the standalone mode uses). tests/integration/test_store_wire.py
holds the MongoDB wire server to the same contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from microshop.orders.store import OrderStore
from microshop.orders.store.outbox import DocumentOutbox
from tests.support.store_contract import StoreContract


class TestStoreContract(StoreContract):
    @pytest.fixture(params=["mongomock", "sqlite"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OrderStore]:
        url = "mongomock://" if request.param == "mongomock" else f"sqlite:///{tmp_path / 'o.db'}"
        store = OrderStore(url)
        store.prepare()
        yield store
        store.close()

    @pytest.fixture
    def twin(self, store: OrderStore, tmp_path: Path) -> Iterator[Callable[[], OrderStore]]:
        """Another replica's store on the same database. mongomock's data lives in its client,
        so its twin shares the first store's backend (and the lock mongomock needs)."""
        opened: list[OrderStore] = []

        def open_twin() -> OrderStore:
            if isinstance(store.outbox, DocumentOutbox):
                twin = OrderStore.__new__(OrderStore)
                twin.backend, twin.orders = store.backend, store.orders
                twin.outbox = DocumentOutbox(store.backend)
                return twin
            twin = OrderStore(f"sqlite:///{tmp_path / 'o.db'}")
            opened.append(twin)
            return twin

        yield open_twin
        for twin in opened:
            twin.close()
