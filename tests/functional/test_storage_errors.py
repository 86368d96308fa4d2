"""Storage trouble becomes a clear problem+json, never a 500, and heals without a restart."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import webtest
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from webapp.config import make_app
from webapp.db import engine as db

from .conftest import migrated_engine, settings_for, tmpfs

BIG = "x" * 100_000


def _sqlite_statements(engine):
    """Every statement SQLite itself is sent on the engine's connections from now on,
    whether through SQLAlchemy or straight to the driver (webapp.db.engine.write_one).
    """
    statements: list[str] = []

    @event.listens_for(engine, "connect")
    def _trace(dbapi_connection, _record):
        dbapi_connection.set_trace_callback(statements.append)

    engine.dispose()  # connections opened before the listener would not be traced
    return statements


def _post(app, title="n", body=BIG, status="*"):
    return app.post_json("/api/notes", {"title": title, "body": body}, status=status)


def test_page_limit_full_is_507_reads_work_and_writes_recover(tmp_path):
    path = tmp_path / "app.db"
    engine = migrated_engine(path)
    limit = {"pages": 0}

    @event.listens_for(engine, "checkout")
    def _cap(dbapi_connection, _record, _proxy):
        # SQLite's own size cap yields the same SQLITE_FULL as a full file system.
        if limit["pages"]:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")
        else:
            dbapi_connection.execute("PRAGMA max_page_count = 4294967294")

    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    _post(app, title="before", status=201)
    limit["pages"] = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]

    full = _post(app, title="too much", status=507)
    assert full.content_type == "application/problem+json"
    assert "full" in full.json["detail"]
    assert full.headers["Retry-After"]
    assert [n["title"] for n in app.get("/api/notes", status=200).json["items"]] == ["before"]

    limit["pages"] = 0  # space freed
    _post(app, title="after", status=201)
    titles = [n["title"] for n in app.get("/api/notes").json["items"]]
    assert titles == ["after", "before"]
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    engine.dispose()


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB file system, so the disk itself runs out (needs root and mount)."""
    with tmpfs(tmp_path / "small", "size=2m") as mountpoint:
        yield mountpoint


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(10_000):  # bounded: 10 000 x 4 KiB is far beyond the 2 MiB disk
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_file_system_is_507_reads_work_and_writes_recover(small_disk):
    path = small_disk / "app.db"
    engine = migrated_engine(path)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    _post(app, title="before", status=201)
    filler = _fill(small_disk)

    statuses = [_post(app, title=f"fill {i}").status_int for i in range(30)]
    assert 507 in statuses
    assert set(statuses) <= {201, 507}
    full = _post(app, title="refused")
    assert full.status_int == 507
    assert full.content_type == "application/problem+json"
    assert app.get("/api/notes?limit=1", status=200).json["items"]

    filler.unlink()
    _post(app, title="after", status=201)
    assert app.get("/api/notes?limit=1").json["items"][0]["title"] == "after"
    engine.dispose()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_read_only_database_is_503_with_retry_after_and_reads_work(tmp_path):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    engine = db.make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = 1")

    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    response = _post(app, body="", status=503)
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"]
    assert app.get("/api/notes", status=200).json == {"items": [], "next_cursor": None}
    engine.dispose()


def test_lock_held_past_busy_timeout_is_retried_then_503(tmp_path):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    engine = db.make_engine(f"sqlite:///{path}", busy_timeout_ms=50)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    statements = _sqlite_statements(engine)

    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = _post(app, body="", status=503)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    # pyramid_retry ran the request three times, and each asked SQLite for the lock.
    assert statements.count("BEGIN IMMEDIATE") == 3
    _post(app, body="", status=201)
    engine.dispose()


def test_lock_released_during_retries_succeeds(tmp_path):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    engine = db.make_engine(f"sqlite:///{path}", busy_timeout_ms=50)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    # A failed attempt hands its connection back to the pool before the retry.
    @event.listens_for(engine, "checkin")
    def _release_after_first_failure(_dbapi_connection, _record):
        if not released.is_set():
            holder.execute("ROLLBACK")
            released.set()

    _post(app, body="", status=201)
    assert released.is_set()
    holder.close()
    engine.dispose()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unexpected_error_is_500_problem_with_request_id_and_logged(tmp_path):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE notes")  # a schema the code cannot work with
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    collect = _Collect()
    logger = logging.getLogger("webapp.http.errors")
    logger.addHandler(collect)
    try:
        response = app.get("/api/notes", headers={"X-Request-ID": "trace-me"}, status=500)
    finally:
        logger.removeHandler(collect)
    assert response.content_type == "application/problem+json"
    assert response.json["request_id"] == "trace-me"
    assert "trace-me" in response.json["detail"]
    assert "no such table" not in response.text  # details stay in the log
    [record] = collect.records
    assert record.__dict__["request_id"] == "trace-me" and record.exc_info
    assert "no such table" in str(record.exc_info[1])
    engine.dispose()


def test_db_files_are_wal_with_the_pragmas(engine):
    with engine.connect() as conn:
        values = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert values == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": db.BUSY_TIMEOUT_MS,
    }


def test_write_transactions_begin_immediate_and_reads_take_no_lock(tmp_path):
    path = tmp_path / "app.db"
    engine = migrated_engine(path)
    statements = _sqlite_statements(engine)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    _post(app, body="", status=201)
    assert "BEGIN IMMEDIATE" in statements
    statements.clear()
    app.get("/api/notes")
    # Reads take no write lock; each runs as its own read transaction.
    assert not any(statement.startswith("BEGIN") for statement in statements)
    assert any(statement.startswith("SELECT") for statement in statements)
    engine.dispose()


def test_dispose_after_fork_empties_pools(tmp_path):
    engine = migrated_engine(tmp_path / "app.db")
    with engine.connect():
        pass
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.checkedin() == 1
    db.dispose_after_fork()
    assert engine.pool.checkedin() == 0
    # The engine still works: it opens fresh connections of its own.
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


def test_exhausted_connection_pool_is_503(tmp_path):
    path = tmp_path / "app.db"
    engine = migrated_engine(path, pool_size=1, max_overflow=0, pool_timeout=0.05)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    held = engine.connect()  # the only connection, taken by "another request"
    try:
        response = app.get("/api/notes", status=503)
    finally:
        held.close()
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    app.get("/api/notes", status=200)
    engine.dispose()
