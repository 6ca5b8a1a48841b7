"""Alembic environment of the payments database."""

from microshop.payments.models import PaymentsBase
from microshop.platform.db import run_migrations_env

run_migrations_env(PaymentsBase.metadata)
