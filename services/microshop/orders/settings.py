"""Settings of the orders service (environment, prefix MICROSHOP_)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from microshop.platform.settings import DatabaseSettings


class OrdersSettings(DatabaseSettings):
    # mongodb://… (a server), sqlite:///path (embedded, on disk) or mongomock:// (in memory).
    database_url: str = "sqlite:///./data/orders.db"
    database_name: str = "orders"
    # The MongoDB client (mongodb:// only). An option also written in the URL keeps the URL's
    # value. Every wait is bounded below the gateway's 10 s upstream timeout, so a request to an
    # unreachable server ends in this service's 503, not the gateway's 504.
    mongo_server_selection_timeout_ms: int = Field(default=5000, gt=0)
    mongo_connect_timeout_ms: int = Field(default=3000, gt=0)
    # The client-side operation timeout (pymongo's timeoutMS): one operation, its retries and
    # its server selection together.
    mongo_timeout_ms: int = Field(default=8000, gt=0)
    mongo_max_pool_size: int = Field(default=50, gt=0)
    # A write or read interrupted by a failover or a dropped connection is retried once.
    mongo_retry_writes: bool = True
    mongo_retry_reads: bool = True
    # An order acknowledged with 202 is on a majority of the replica set, in its journal.
    mongo_write_concern: str = "majority"
    mongo_journal: bool = True

    def mongo_client_options(self) -> dict[str, Any]:
        """The settings above as MongoClient keywords."""
        write_concern: int | str = (
            int(self.mongo_write_concern)
            if self.mongo_write_concern.isdigit()
            else self.mongo_write_concern
        )
        return {
            "serverSelectionTimeoutMS": self.mongo_server_selection_timeout_ms,
            "connectTimeoutMS": self.mongo_connect_timeout_ms,
            "timeoutMS": self.mongo_timeout_ms,
            "maxPoolSize": self.mongo_max_pool_size,
            "retryWrites": self.mongo_retry_writes,
            "retryReads": self.mongo_retry_reads,
            "w": write_concern,
            "journal": self.mongo_journal,
        }

    # The re-drive sweeper: an order PENDING, or PAID without its notification, this long is
    # driven again (its order.created published once more); swept this often.
    redrive_after_seconds: float = Field(default=60.0, gt=0)
    redrive_interval_seconds: float = Field(default=10.0, gt=0)
