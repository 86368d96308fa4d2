"""Schema revisions: what the code expects (head), what a database has (current), the
upgrade between them, and new revisions (revision). Alembic runs on a connection from
webapp.db.engine.make_engine; there is no alembic.ini, alembic_config() is the one place
that says where the migrations are.
"""

from __future__ import annotations

import argparse
from functools import cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from webapp.db.engine import reader
from webapp.notes.models import FTS_TABLE, Base

# The package's own migrations: env.py, the template for new revisions, and versions/.
SCRIPT_LOCATION = "webapp.db:migrations"


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Autogenerate filter: the FTS5 table and its shadow tables belong to the migration."""
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLE))


def alembic_config(connection: Connection | None = None) -> Config:
    # quiet: the CLI prints its own one line for each command, not Alembic's narration.
    config = Config(cmd_opts=argparse.Namespace(quiet=True))
    config.set_main_option("script_location", SCRIPT_LOCATION)
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


@cache
def _holds(location: str, revision: str) -> bool:
    # Keyed by location too: the tests move the migrations aside and add revisions there.
    config = alembic_config()
    config.set_main_option("script_location", location)
    try:
        ScriptDirectory.from_config(config).get_revision(revision)
    except CommandError:
        return False
    return True


def is_newer(revision: str | None) -> bool:
    """Whether REVISION is one this code does not know: a later release migrated the
    database. The code may still run on it, if the later release only expanded the
    schema (see missing_columns)."""
    return revision is not None and not _holds(SCRIPT_LOCATION, revision)


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Migrate to head; return (revision before, revision after). Safe to repeat.

    A database at a newer revision is left as it is: there is nothing to migrate to, and
    a release rolled back to keeps working on the expanded schema."""
    with engine.connect() as connection:
        before = current(connection)
        connection.rollback()
        if is_newer(before):
            return before, str(before)
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        after = current(connection)
        connection.rollback()
    return before, after or "none"


def _next_revision_id(heads: tuple[str, ...]) -> str | None:
    """Revision ids count up from 0001, so that versions/ lists in the order they run."""
    if len(heads) == 1 and heads[0].isdigit():
        return f"{int(heads[0]) + 1:0{len(heads[0])}d}"
    return None  # Alembic's own id; with several heads it refuses to go on


def revision(message: str, *, autogenerate_from: Engine | None = None) -> Script:
    """Write a new revision after head into the migrations' versions/ and return it.

    With `autogenerate_from`, its operations are the difference between the models and
    that engine's database, which must be at head (Alembic refuses otherwise).
    """
    config = alembic_config()
    rev_id = _next_revision_id(tuple(ScriptDirectory.from_config(config).get_heads()))
    if autogenerate_from is None:
        made = command.revision(config, message=message, rev_id=rev_id)
    else:
        # Autogenerate only reads the schema: no BEGIN IMMEDIATE, no write lock taken.
        with reader(autogenerate_from).connect() as connection:
            config.attributes["connection"] = connection
            made = command.revision(config, message=message, rev_id=rev_id, autogenerate=True)
    if not isinstance(made, Script):  # pragma: no cover - one revision is all we ask for
        raise CommandError(f"expected one new revision, Alembic made {made!r}")
    return made


def missing_columns(conn: Connection) -> list[str]:
    """`table.column` for each column the code maps that the database lacks.

    A database at the head revision has them all, unless a release's migration broke the
    expand-then-contract rule (README "Zero-downtime releases"): then the release that
    still maps what was dropped or renamed must not serve. The same test decides whether
    this code can serve a database that a newer release migrated.
    """
    missing: list[str] = []
    for table in Base.metadata.sorted_tables:
        rows = conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")').fetchall()
        present = {row[1] for row in rows}
        missing += [f"{table.name}.{c.name}" for c in table.columns if c.name not in present]
    return missing
