"""Settings of the notifications service (environment, prefix MICROSHOP_)."""

from microshop.platform.settings import DatabaseSettings


class NotificationsSettings(DatabaseSettings):
    database_url: str = "sqlite:///./data/notifications.db"
