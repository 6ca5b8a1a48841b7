"""Settings of the payments service (environment, prefix MICROSHOP_)."""

from microshop.platform.settings import DatabaseSettings


class PaymentsSettings(DatabaseSettings):
    database_url: str = "sqlite:///./data/payments.db"
