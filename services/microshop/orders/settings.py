"""Settings of the orders service (environment, prefix MICROSHOP_)."""

from microshop.platform.settings import DatabaseSettings


class OrdersSettings(DatabaseSettings):
    # mongodb://… (a server), montydb:///path (embedded, on disk) or mongomock:// (in memory).
    database_url: str = "montydb:///./data/orders"
    database_name: str = "orders"
