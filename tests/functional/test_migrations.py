"""The models and the migrations agree, and the migration round-trips."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from webapp.db import schema
from webapp.notes.models import Base

from .conftest import migrated_engine


def test_autogenerate_finds_no_difference(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": schema.include_name,
                "compare_type": True,
                "render_as_batch": True,
            },
        )
        assert compare_metadata(context, Base.metadata) == []


def test_initial_revision_creates_fts_and_triggers(engine):
    with engine.connect() as conn:
        names = {
            row[0]
            for row in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"
            )
        }
    assert {"notes", "notes_fts", "notes_fts_ai", "notes_fts_ad", "notes_fts_au"} <= names


def test_downgrade_and_upgrade_again(tmp_path):
    engine = migrated_engine(tmp_path / "app.db")
    with engine.connect() as conn:
        command.downgrade(schema.alembic_config(conn), "base")
        conn.commit()
        assert schema.current(conn) is None
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        assert "notes" not in tables and "notes_fts" not in tables
    assert schema.upgrade(engine) == (None, schema.head())
    engine.dispose()


GOOD_MIGRATION = """
from alembic import op
import sqlalchemy as sa

revision = "9998"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("first_step", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    pass
"""

FAILING_MIGRATION = """
from alembic import op
import sqlalchemy as sa

revision = "9999"
down_revision = "9998"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("DELETE FROM notes")
    raise RuntimeError("this migration fails halfway")


def downgrade():
    pass
"""


def test_an_upgrade_failing_halfway_leaves_the_database_as_it_was(tmp_path):
    engine = migrated_engine(tmp_path / "app.db")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO notes (title, body, tags, created_at, updated_at, version) "
            "VALUES ('keep me', '', '[]', '2026-01-01', '2026-01-01', 1)"
        )
    extra = tmp_path / "versions"
    extra.mkdir()
    (extra / "9998_works.py").write_text(GOOD_MIGRATION.format(down=schema.head()))
    (extra / "9999_fails.py").write_text(FAILING_MIGRATION)
    shipped = Path(str(resources.files("webapp.db").joinpath("migrations/versions")))
    with engine.connect() as conn:
        config = schema.alembic_config(conn)
        config.set_main_option("version_locations", os.pathsep.join([str(shipped), str(extra)]))
        with pytest.raises(RuntimeError, match="fails halfway"):
            command.upgrade(config, "heads")
    with engine.connect() as conn:
        assert schema.current(conn) == schema.head()
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        # All or nothing: the revision before the failing one is undone as well.
        assert "half_done" not in tables and "first_step" not in tables
        assert conn.exec_driver_sql("SELECT title FROM notes").scalars().all() == ["keep me"]
    engine.dispose()
