"""Every SQL service's migrations build, on SQLite (the standalone store), the schema its
models describe, and a second run changes nothing. (tests/integration/test_migrations.py does
the same on PostgreSQL, with replicas migrating at once.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from microshop import registry
from microshop.notifications.models import NotificationsBase
from microshop.payments.models import PaymentsBase
from microshop.platform.db import make_engine, migrate
from microshop.users.models import UsersBase
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
def test_upgrade_builds_the_models_schema_and_a_second_run_changes_nothing(
    tmp_path: Path, migrations: Path, metadata: MetaData
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    migrate(engine, migrations)
    migrate(engine, migrations)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        assert [row[0] for row in versions] == [head_of(migrations)]
    engine.dispose()
