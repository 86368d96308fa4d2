"""Notes, and their full-text index kept in sync by triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# An external-content FTS5 table: the text lives once, in notes; the index holds only
# tokens. The triggers are the documented way to keep such an index in step.
FTS_DDL = (
    "CREATE VIRTUAL TABLE notes_fts USING fts5("
    "title, body, content='notes', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER notes_fts_ai AFTER INSERT ON notes BEGIN "
    "INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER notes_fts_ad AFTER DELETE ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER notes_fts_au AFTER UPDATE OF title, body ON notes BEGIN "
    "INSERT INTO notes_fts(notes_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO notes_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_notes_version_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
        sqlite_autoincrement=True,
    )
    for statement in FTS_DDL:
        op.execute(statement)


def downgrade() -> None:
    for name in ("notes_fts_au", "notes_fts_ad", "notes_fts_ai"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS notes_fts")
    op.drop_table("notes")
