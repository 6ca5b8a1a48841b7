"""Alembic environment of the users database."""

from microshop.platform.db import run_migrations_env
from microshop.users.models import UsersBase

run_migrations_env(UsersBase.metadata)
