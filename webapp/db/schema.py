"""Schema revisions: what the code expects (head), what a database has (current), and
the upgrade between them. Alembic runs on a connection from webapp.db.engine.make_engine.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from webapp.notes.models import FTS_TABLE


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Autogenerate filter: the FTS5 table and its shadow tables belong to the migration."""
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLE))


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "webapp.db:migrations")
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    # More than one head means two migrations branched; that is a bug to fix in code.
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    return heads[0]


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; return (revision before, revision after). Safe to repeat."""
    with engine.connect() as connection:
        before = current(connection)
        connection.rollback()
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        after = current(connection)
        connection.rollback()
    return before, after or "none"
