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
from pymongo.uri_parser import parse_uri

from microshop.platform.telemetry import TracedCollection

# What an insert raises on a taken _id or unique key.
DUPLICATE_KEY = (pymongo.errors.DuplicateKeyError,)


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


@dataclass
class DocumentBackend:
    """The client, the database and its two collections (traced when tracing is on), and the
    access lock."""

    client: Any
    database: Any
    orders: Any
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
        if tracer is not None:
            orders, products = TracedCollection(orders, tracer), TracedCollection(products, tracer)
        lock = threading.RLock() if in_memory else contextlib.nullcontext()
        return cls(client, database, orders, products, in_memory, lock)

    def ping(self) -> None:
        with self.lock:
            if self.in_memory:
                self.products.find_one()
            else:
                self.client.admin.command("ping")

    def close(self) -> None:
        with self.lock:
            self.client.close()
