"""The catalog in the orders database: seeded from the domain's products, read by the API."""

from __future__ import annotations

from microshop.orders.domain import CATALOG, Product
from microshop.orders.store.backend import DocumentBackend


class DocumentCatalog:
    def __init__(self, backend: DocumentBackend) -> None:
        self.backend = backend

    def seed(self) -> None:
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
        with self.backend.lock:
            docs = list(self.backend.products.find({}))
        return {
            d["_id"]: Product(d["_id"], d["name"], int(d["price_cents"]), d["currency"])
            for d in sorted(docs, key=lambda d: d["_id"])
        }
