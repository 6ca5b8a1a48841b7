"""The orders database behind the pymongo API: MongoDB, or an embedded pymongo-compatible store
(montydb on disk, mongomock in memory), chosen by URL."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.errors
from opentelemetry.trace import Tracer

from microshop.platform.telemetry import TracedCollection


def _duplicate_key_errors() -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [pymongo.errors.DuplicateKeyError]
    with contextlib.suppress(ImportError):
        import montydb.errors

        errors.append(montydb.errors.DuplicateKeyError)
    return tuple(errors)


# What an insert raises on a taken _id or unique key, whichever store is behind the API.
DUPLICATE_KEY = _duplicate_key_errors()


def connect(url: str, database_name: str) -> tuple[Any, Any, bool]:
    """(client, database, embedded) for a mongodb://, montydb:/// or mongomock:// URL."""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        client: Any = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000, tz_aware=True)
        return client, client[database_name], False
    if url.startswith("montydb://"):
        from montydb import MontyClient, set_storage

        # Like sqlite:///: three slashes then a relative path, four for an absolute one.
        path = url.removeprefix("montydb:///")
        if not path or path == url:
            raise ValueError(f"{url!r}: use montydb:///relative/path or montydb:////absolute/path")
        set_storage(path, storage="sqlite", use_bson=False)
        client = MontyClient(path)
        return client, client[database_name], True
    if url.startswith("mongomock://"):
        import mongomock

        client = mongomock.MongoClient(tz_aware=True)
        return client, client[database_name], True
    raise ValueError(f"unsupported orders database URL {url!r}: use mongodb://, montydb:///path")


@dataclass
class DocumentBackend:
    """The client, the database and its two collections (traced when tracing is on), and the
    access lock."""

    client: Any
    database: Any
    orders: Any
    products: Any
    embedded: bool
    # The embedded stores are not made for concurrent writers: access to them is serialised.
    lock: contextlib.AbstractContextManager[Any]

    @classmethod
    def open(
        cls, url: str, database_name: str = "orders", tracer: Tracer | None = None
    ) -> DocumentBackend:
        client, database, embedded = connect(url, database_name)
        orders, products = database["orders"], database["products"]
        if tracer is not None:
            orders, products = TracedCollection(orders, tracer), TracedCollection(products, tracer)
        lock = threading.RLock() if embedded else contextlib.nullcontext()
        return cls(client, database, orders, products, embedded, lock)

    def ping(self) -> None:
        with self.lock:
            if self.embedded:
                self.products.find_one()
            else:
                self.client.admin.command("ping")

    def close(self) -> None:
        with self.lock:
            self.client.close()
