"""Persistence of the orders service, split by concern: what every backend offers (base.py), the
document store behind the pymongo API (backend, catalog, orders, the document outbox with its
relay lease, the inbox) and the embedded SQLite store of the standalone mode (sqlite.py); the
re-drive sweeper's claims on either (redrive.py).

Orders need no multi-document transactions on a document store: an order document carries its
own outbox (the events to publish) and the ids of the events it has processed, so every state
change and its event are one atomic single-document write. SQLite writes the same in one
transaction over three tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Tracer

from microshop.orders.store.backend import DocumentBackend
from microshop.orders.store.base import CachedCatalog, Catalog, Orders, Outbox
from microshop.orders.store.catalog import DocumentCatalog
from microshop.orders.store.orders import DocumentOrders
from microshop.orders.store.outbox import DocumentOutbox
from microshop.orders.store.redrive import DocumentRedrives, Redrives, SqliteRedrives
from microshop.orders.store.sqlite import (
    SqliteBackend,
    SqliteCatalog,
    SqliteOrders,
    SqliteOutbox,
    path_of,
)


class OrderStore:
    """What the orders service opens, by URL: mongodb:// (a server), sqlite:///path (embedded)
    or mongomock:// (in memory, for tests). Routes and handlers use `catalog` and `orders`, the
    relay drains `outbox`. `client_options` are the MongoClient's (OrdersSettings);
    `redrive_after_seconds` how long an order may wait for its payment, and a paid one for its
    notification (OrdersSettings), written with each placing and settling."""

    catalog: Catalog
    orders: Orders
    outbox: Outbox
    redrives: Redrives

    def __init__(
        self,
        url: str,
        database_name: str = "orders",
        tracer: Tracer | None = None,
        client_options: Mapping[str, Any] | None = None,
        redrive_after_seconds: float = 60.0,
    ) -> None:
        self.backend: SqliteBackend | DocumentBackend
        outbox: SqliteOutbox | DocumentOutbox
        if url.startswith("sqlite:"):
            self.backend = SqliteBackend(path_of(url), tracer)
            source: Catalog = SqliteCatalog(self.backend)
            outbox = SqliteOutbox(self.backend)
            sqlite_redrives = SqliteRedrives(self.backend, outbox, redrive_after_seconds)
            self.orders = SqliteOrders(self.backend, outbox, sqlite_redrives)
            self.redrives = sqlite_redrives
        else:
            self.backend = DocumentBackend.open(url, database_name, tracer, client_options)
            source = DocumentCatalog(self.backend)
            outbox = DocumentOutbox(self.backend)
            document_redrives = DocumentRedrives(self.backend, outbox, redrive_after_seconds)
            self.orders = DocumentOrders(self.backend, outbox, document_redrives)
            self.redrives = document_redrives
        self.outbox = outbox
        self.catalog = CachedCatalog(source)

    def prepare(self) -> None:
        """Make indexes and seed the catalog; safe to run on every start of every replica."""
        self.orders.create_indexes()
        self.redrives.create_indexes()
        self.catalog.seed()

    def ping(self) -> None:
        self.backend.ping()

    def close(self) -> None:
        self.backend.close()
