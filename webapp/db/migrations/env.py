"""Alembic environment: runs inside `python -m webapp db ...` and the tests.

The caller passes an open connection in config.attributes["connection"], made by
webapp.db.engine.make_engine, so migrations run with the same pragmas and BEGIN IMMEDIATE as
the app. Offline (SQL script) mode is not supported: SQLite is migrated in place.
"""

from __future__ import annotations

from alembic import context

from webapp.db.schema import include_name
from webapp.notes.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_name=include_name,
    compare_type=True,
    # SQLite's DDL is transactional once pysqlite's own transaction handling is off
    # (webapp.db.engine does that): one upgrade is then all or nothing, even across revisions,
    # so a migration that fails halfway leaves the file exactly as it was.
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
