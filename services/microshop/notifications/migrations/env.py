"""Alembic environment of the notifications database."""

from microshop.notifications.models import NotificationsBase
from microshop.platform.db import run_migrations_env

run_migrations_env(NotificationsBase.metadata)
