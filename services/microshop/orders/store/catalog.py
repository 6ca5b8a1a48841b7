"""The catalog in the orders database: seeded from the domain's products, read by the API."""

from __future__ import annotations

from microshop.orders.domain import CATALOG, Product
from microshop.orders.store.backend import DocumentBackend


class Catalog:
    def __init__(self, backend: DocumentBackend) -> None:
        self.backend = backend

    def seed(self) -> None:
        """Write every product of the domain's catalog (upserts: safe on every start)."""
        with self.backend.lock:
            for product in CATALOG:
                self.backend.products.update_one(
                    {"_id": product.sku},
                    {
                        "$set": {
                            "name": product.name,
                            "price_cents": product.price_cents,
                            "currency": product.currency,
                        }
                    },
                    upsert=True,
                )

    def products(self) -> dict[str, Product]:
        """Every product by sku, in sku order."""
        with self.backend.lock:
            docs = list(self.backend.products.find({}))
        return {
            d["_id"]: Product(d["_id"], d["name"], int(d["price_cents"]), d["currency"])
            for d in sorted(docs, key=lambda d: d["_id"])
        }
