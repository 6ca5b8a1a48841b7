"""Every SQL service's migrations on the real PostgreSQL: the models' schema, run by replicas
starting together (the advisory lock), and a second run that changes nothing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from microshop import registry
from microshop.notifications.models import NotificationsBase
from microshop.payments.models import PaymentsBase
from microshop.platform.db import make_engine, migrate
from microshop.users.models import UsersBase
from tests.integration.conftest import PG_ADMIN
from tests.support.migrations import head_of

USERS, PAYMENTS, NOTIFICATIONS = (
    registry.service(name).migrations for name in ("users", "payments", "notifications")
)


@pytest.mark.parametrize(
    ("migrations", "metadata"),
    [(USERS, UsersBase.metadata), (PAYMENTS, PaymentsBase.metadata),
     (NOTIFICATIONS, NotificationsBase.metadata)],
    ids=["users", "payments", "notifications"],
)  # fmt: skip
@pytest.mark.timeout(60)  # without the advisory lock the replicas' DDL blocks one another
def test_replicas_migrating_together_build_the_models_schema_once(
    postgres: dict[str, str], migrations: Path, metadata: MetaData
) -> None:
    name = f"microshop_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engines = [make_engine(postgres["users"].rsplit("/", 1)[0] + f"/{name}") for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # three replicas start at once
            list(pool.map(lambda engine: migrate(engine, migrations), engines))
        migrate(engines[0], migrations)  # and a restart finds nothing to do
        with engines[0].connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
            versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert [row[0] for row in versions] == [head_of(migrations)]
    finally:
        for engine in engines:
            engine.dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
