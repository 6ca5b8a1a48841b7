"""The orders database behind the pymongo API: a MongoDB server (mongodb://), or mongomock in
memory (mongomock://, for unit tests), chosen by URL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pymongo
import pymongo.errors
from opentelemetry.trace import Tracer
from pymongo import WriteConcern
from pymongo.uri_parser import parse_uri

from microshop.platform.telemetry import TracedCollection

# What an insert raises on a taken _id or unique key.
DUPLICATE_KEY = (pymongo.errors.DuplicateKeyError,)
# The write concern of a write whose loss the saga repairs by itself (`orders_best_effort`):
# acknowledged by the primary, not waited for on the journal (nor by a majority).
BEST_EFFORT = WriteConcern(w=1, j=False)


def client_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` (from settings) as MongoClient keywords, less those the URL sets itself: an
    option written in the URL wins (pymongo would let the keyword win)."""
    in_url = {name.lower() for name in parse_uri(url)["options"]}
    return {name: value for name, value in options.items() if name.lower() not in in_url}


def connect(
    url: str, database_name: str, options: Mapping[str, Any] | None = None
) -> tuple[Any, Any, bool]:
    """(client, database, in_memory) for a mongodb:// or mongomock:// URL."""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        client: Any = pymongo.MongoClient(url, tz_aware=True, **client_options(url, options or {}))
        return client, client[database_name], False
    if url.startswith("mongomock://"):
        import mongomock

        client = mongomock.MongoClient(tz_aware=True)
        return client, client[database_name], True
    raise ValueError(
        f"unsupported orders database URL {url!r}: use mongodb://…, sqlite:///path (embedded)"
        " or mongomock:// (in memory, tests)"
    )


def drop_indexes(collection: Any, names: set[str]) -> None:
    """Drop those of the named indexes (an earlier release's, that nothing reads) it has."""
    for name in set(collection.index_information()) & names:
        collection.drop_index(name)


@dataclass
class DocumentBackend:
    """The client, the database and its two collections (traced when tracing is on), and the
    access lock.

    `orders_best_effort` is the orders collection for the writes whose loss the saga repairs by
    itself, and only those: clearing events already published (lost, they are published again
    and consumers dedupe them by event id) and recording that a paid order's buyer was notified
    (lost, the re-drive sweeper drives the order again, and notifications announces its one
    notification once more). They skip the wait for the journal and the majority that the
    settings' write concern makes every other write take (j=true: an fsync each, which a
    server that serialises a collection's writes, as SecantusDB does, holds its lock through).
    """

    client: Any
    database: Any
    orders: Any
    orders_best_effort: Any
    products: Any
    in_memory: bool
    # pymongo's client is thread-safe; mongomock is not, so access to it is serialised.
    lock: contextlib.AbstractContextManager[Any]

    @classmethod
    def open(
        cls,
        url: str,
        database_name: str = "orders",
        tracer: Tracer | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> DocumentBackend:
        client, database, in_memory = connect(url, database_name, options)
        orders, products = database["orders"], database["products"]
        best_effort = orders.with_options(write_concern=BEST_EFFORT)
        if tracer is not None:
            orders, products = TracedCollection(orders, tracer), TracedCollection(products, tracer)
            best_effort = TracedCollection(best_effort, tracer)
        lock = threading.RLock() if in_memory else contextlib.nullcontext()
        return cls(client, database, orders, best_effort, products, in_memory, lock)

    def ping(self) -> None:
        with self.lock:
            if self.in_memory:
                self.products.find_one()
            else:
                self.client.admin.command("ping")

    def close(self) -> None:
        with self.lock:
            self.client.close()
