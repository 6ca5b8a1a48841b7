"""Persistence of the orders service through the pymongo API, split by concern: the backend
(backend.py), the catalog, the orders, the document outbox with its relay lease, the inbox.

Orders need no multi-document transactions: an order document carries its own outbox (the
events to publish) and the ids of the events it has processed, so every state change and its
event are one atomic single-document write.
"""

from __future__ import annotations

from opentelemetry.trace import Tracer

from microshop.orders.store.backend import DocumentBackend
from microshop.orders.store.catalog import Catalog
from microshop.orders.store.orders import Orders
from microshop.orders.store.outbox import DocumentOutbox


class OrderStore:
    """What the orders service opens: routes and handlers use `catalog` and `orders`, the relay
    drains `outbox`."""

    def __init__(
        self, url: str, database_name: str = "orders", tracer: Tracer | None = None
    ) -> None:
        self.backend = DocumentBackend.open(url, database_name, tracer)
        self.catalog = Catalog(self.backend)
        self.outbox = DocumentOutbox(self.backend)
        self.orders = Orders(self.backend, self.outbox)

    def prepare(self) -> None:
        """Make indexes and seed the catalog; safe to run on every start of every replica."""
        self.orders.create_indexes()
        self.catalog.seed()

    def ping(self) -> None:
        self.backend.ping()

    def close(self) -> None:
        self.backend.close()
