"""The models and the migrations agree, and the migration round-trips."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from webapp import schema
from webapp.models import Base

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
