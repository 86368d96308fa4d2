"""The database: the SQLite engine (engine), the write gate (write_gate), the session of
each request (session), schema revisions (schema) and the Alembic migrations.
"""

from __future__ import annotations

from typing import Any

from webapp.db.session import session_factories


def includeme(config: Any) -> None:
    """Session factories for `request.dbsession` (see webapp.http.request)."""
    config.registry["dbsession_factories"] = session_factories(
        config.get_settings()["webapp.engine"]
    )
