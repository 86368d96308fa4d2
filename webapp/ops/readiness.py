"""Is the database ready to serve: reachable, writable, at the schema head or a newer
revision that still has every column the code maps?

Shared by GET /readyz and `python -m webapp db check` (the sqlite service's healthcheck),
so the two can never disagree.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from webapp.db import schema


def problem(engine: Engine) -> str | None:
    """None when ready, else a one-line reason."""
    path = Path(engine.url.database or "")
    if not path.exists():
        # Connecting would create an empty file and hide the real problem.
        return f"database file {path} does not exist; run `python -m webapp db upgrade`"
    try:
        with engine.connect() as conn:
            # BEGIN IMMEDIATE (the engine's default) takes the write lock: this fails on
            # a read-only file or directory, or when a writer holds the lock too long.
            conn.execute(text("SELECT 1"))
            revision = schema.current(conn)
            missing = schema.missing_columns(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)) or type(exc).__name__
        return f"database {path} is not usable: {reason}"
    expected = schema.head()
    # A newer revision is served when every mapped column is there: during a switch the
    # old release runs on the schema the new one expanded, and after a rollback too.
    if revision != expected and not schema.is_newer(revision):
        return (
            f"database {path} is at schema revision {revision or 'none'}, the code expects "
            f"{expected}; run `python -m webapp db upgrade`"
        )
    if missing:
        return (
            f"database {path} lacks {', '.join(missing)}, which this release reads; a migration "
            "dropped or renamed what an older release still uses (expand, then contract)"
        )
    return None
