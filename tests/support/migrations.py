"""The newest revision of a service's migrations, which a migrated database must be at."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory


def head_of(migrations: Path) -> str:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, f"no revision in {migrations}"
    return head
