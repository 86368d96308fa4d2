"""Functional fixtures: a real SQLite file migrated by Alembic once per session, and a
WebTest app whose every test runs inside one outer transaction that is rolled back.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy.engine import Engine

from webapp.config import make_app
from webapp.db import schema
from webapp.db.engine import BEGIN_OPTION, make_engine
from webapp.db.session import session_factories
from webapp.settings import Settings

TEST_SECRET = "functional-tests-secret-key-0123456789abcdef"


def settings_for(path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{path}",
        "app_env": "dev",
        "secret_key": TEST_SECRET,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at MOUNTPOINT with mount OPTIONS (needs root and mount), for
    disks that are full or read-only for real; the test is skipped where mounting fails."""
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def migrated_engine(path: Path, **engine_options: Any) -> Engine:
    engine = make_engine(f"sqlite:///{path}", **engine_options)
    schema.upgrade(engine)
    return engine


@pytest.fixture(scope="session")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("db") / "app.db"


@pytest.fixture(scope="session")
def engine(db_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(db_path)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def wsgi_app(db_path: Path, engine: Engine) -> Any:
    return make_app(settings_for(db_path), engine=engine)


@pytest.fixture
def dbconn(wsgi_app: Any, engine: Engine) -> Iterator[Any]:
    """An outer transaction that every request of the test joins, then rolled back."""
    registry = wsgi_app.registry
    original = registry["dbsession_factories"]
    # DEFERRED: the outer transaction takes the write lock only once a test writes, so
    # tests of /readyz (which takes the write lock itself) can run while it is open.
    conn = engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"})
    outer = conn.begin()
    registry["dbsession_factories"] = session_factories(
        conn, join_transaction_mode="create_savepoint"
    )
    try:
        yield conn
    finally:
        registry["dbsession_factories"] = original
        outer.rollback()
        conn.close()


@pytest.fixture
def app(wsgi_app: Any, dbconn: Any) -> webtest.TestApp:
    return webtest.TestApp(wsgi_app)


@pytest.fixture
def make_note(app: webtest.TestApp) -> Any:
    def _make(title: str = "a note", body: str = "", tags: list[str] | None = None) -> Any:
        payload = {"title": title, "body": body, "tags": tags or []}
        return app.post_json("/api/notes", payload, status=201)

    return _make


def insert_notes(path: Path, n: int, title: str = "t") -> None:
    """N notes written straight into the SQLite file at PATH, titled TITLE0, TITLE1, ..."""
    conn = sqlite3.connect(path, timeout=10)
    with conn:
        conn.executemany(
            "INSERT INTO notes (title, body, tags, created_at, updated_at, version) "
            "VALUES (?, 'b', '[]', '2026-01-01', '2026-01-01', 1)",
            [(f"{title}{i}",) for i in range(n)],
        )
    conn.close()


def count_notes(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        count: int = conn.execute("SELECT count(*) FROM notes").fetchone()[0]
        return count
    finally:
        conn.close()
