"""The SQLite engine, tuned for several Gunicorn workers sharing one file: pragmas on
every connection, BEGIN IMMEDIATE through the write gate for writers, none for readers,
and busy errors marked for pyramid_retry.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Sequence
from typing import Any

from pyramid_retry import mark_error_retryable
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from webapp.db.write_gate import WriteGate

BUSY_TIMEOUT_MS = 5000

# Primary result codes (the low byte of the extended code) that call for a retry.
SQLITE_BUSY = 5
SQLITE_LOCKED = 6

# Engines made in this process, so that a preloading server can drop inherited
# connections after fork (a SQLite handle must never cross a fork).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
# Each engine's write gate, for writes that run on its pool's connections directly (by
# engine, not pool: dispose() after a fork gives the engine a new pool).
_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()

# Requests that only read run without a transaction of their own (AUTOCOMMIT); everything
# else takes the write lock up front so that concurrent writers queue instead of failing
# with "database is locked" when a read transaction tries to upgrade. Tests may also
# ask for DEFERRED.
BEGIN_OPTION = "webapp_sqlite_begin"
AUTOCOMMIT = "none"


def make_engine(url: str, *, busy_timeout_ms: int | None = None, **kwargs: Any) -> Engine:
    # Room for a worker's threads (GUNICORN_THREADS) without waiting on the pool; a
    # request that still finds none free within pool_timeout gets a 503, not a 500.
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 24)
    kwargs.setdefault("pool_timeout", 10)
    engine = create_engine(url, **kwargs)
    if busy_timeout_ms is None:
        busy_timeout_ms = BUSY_TIMEOUT_MS

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control away from pysqlite, which would otherwise emit a
        # plain BEGIN lazily; the "begin" hook below emits ours (SQLAlchemy's recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # WAL lets readers run beside the one writer; it persists in the file, and
            # a read-only file that is already WAL answers without writing.
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash
            # can lose the last transactions, never corrupt the file.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    gate = _GATES[engine] = WriteGate(engine.url.database, busy_timeout_ms / 1000)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
        if mode == AUTOCOMMIT:
            return
        if mode == "IMMEDIATE":
            gate.enter(conn.connection._connection_record)
        conn.exec_driver_sql(f"BEGIN {mode}")

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        # After the pool's reset has rolled back or the commit has run: SQLite's lock is
        # free, so the next writer's turn starts now.
        gate.leave(record)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        # Let pyramid_retry run the request again when another writer held the lock past
        # busy_timeout; the last attempt still fails and becomes a 503.
        orig = context.original_exception
        if isinstance(orig, sqlite3.Error) and is_busy(orig):
            exc = context.sqlalchemy_exception
            if isinstance(exc, Exception):
                mark_error_retryable(exc)

    _ENGINES.add(engine)
    return engine


def reader(engine: Engine) -> Engine:
    """The same pool, for requests that only read: no BEGIN at all, so each statement
    is its own read transaction. Every read request runs a single SELECT, which is
    consistent by itself, and a BEGIN costs as much again as the lookup it would wrap.
    """
    return engine.execution_options(**{BEGIN_OPTION: AUTOCOMMIT})


def is_reader(bind: Any) -> bool:
    """Whether `bind` is an engine from reader(): its statements need no transaction."""
    if not isinstance(bind, Engine):
        return False
    return bool(bind.get_execution_options().get(BEGIN_OPTION) == AUTOCOMMIT)


def fetch_one(engine: Engine, sql: str, params: Sequence[Any]) -> Any:
    """One row of a single SELECT on a pooled connection, without a Connection or Session.

    For reads only: a pooled connection is in autocommit, so the SELECT is its own
    read transaction. Errors come out as SQLAlchemy's, busy ones marked for a retry, so
    the exception views answer them as they answer every other database error.
    """
    connection = engine.raw_connection()
    try:
        return connection.driver_connection.execute(sql, params).fetchone()  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        raise _wrapped(exc, sql, params) from exc
    finally:
        connection.close()


def write_one(engine: Engine, sql: str, params: Sequence[Any]) -> int | None:
    """One statement in a transaction of its own, committed here; the new row's id.

    What a Session and the transaction manager would do for a single INSERT, without
    their layers (a third of a create's CPU): the writers' turn at the gate, BEGIN
    IMMEDIATE, the statement, COMMIT, and the turn handed on when the connection goes
    back to the pool. SQLAlchemy's statement events do not see it, as with fetch_one.
    """
    connection = engine.raw_connection()
    try:
        _GATES[engine].enter(connection._connection_record)
        driver: sqlite3.Connection = connection.driver_connection  # type: ignore[assignment]
        driver.execute("BEGIN IMMEDIATE")
        try:
            row_id = driver.execute(sql, params).lastrowid
            driver.execute("COMMIT")
        except BaseException:
            if driver.in_transaction:
                driver.execute("ROLLBACK")
            raise
        return row_id
    except sqlite3.Error as exc:
        raise _wrapped(exc, sql, params) from exc
    finally:
        connection.close()


def _wrapped(exc: sqlite3.Error, sql: str, params: Sequence[Any]) -> DBAPIError:
    """A driver error as SQLAlchemy raises it, busy ones marked for pyramid_retry."""
    wrapped = DBAPIError.instance(sql, params, exc, sqlite3.Error)
    assert isinstance(wrapped, DBAPIError)  # a DB-API error, never a statement's own
    if is_busy(exc):
        mark_error_retryable(wrapped)
    return wrapped


def sqlite_code(exc: BaseException) -> int | None:
    """The primary SQLite result code behind a DB-API or SQLAlchemy error, if any."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_busy(exc: BaseException) -> bool:
    return sqlite_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def dispose_after_fork() -> None:
    """Forget connections inherited from the parent without closing its handles."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)
