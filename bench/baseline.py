"""The bare ceilings the notes API is measured against.

Served by the same image and the same gunicorn.conf.py as the real app, so the only
difference between `/hello` and `GET /api/notes/{id}` is the framework, the ORM and the
app's own code, and between `/insert` and `POST /api/notes` the same minus SQLite itself.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., object]

_local = threading.local()
_JSON = [("Content-Type", "application/json")]


def _connection() -> sqlite3.Connection:
    # One connection per Gunicorn thread, with the pragmas the app itself uses, so the
    # write ceiling is what SQLite on this volume can do, not a toy configuration.
    conn = getattr(_local, "conn", None)
    if conn is None:
        path = os.environ.get("BASELINE_DB", "/data/baseline.db")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, title TEXT NOT NULL,"
            " body TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        _local.conn = conn
    return conn


def _insert(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO rows (title, body) VALUES (?, ?)", ("baseline", body.decode())
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert cur.lastrowid is not None  # an INSERT that committed has a row id
    return b'{"id": %d}' % cur.lastrowid


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    if path == "/hello" and method == "GET":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]
    if path == "/insert" and method == "POST":
        payload = _insert(environ)
        start_response("201 Created", _JSON)
        return [payload]
    start_response("404 Not Found", _JSON)
    return [b'{"title": "Not Found"}']
