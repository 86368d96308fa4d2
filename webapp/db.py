"""The SQLite engine, tuned for several Gunicorn workers sharing one file, and the
per-request session owned by the transaction manager.
"""

from __future__ import annotations

import sqlite3
import weakref
from typing import Any

from pyramid_retry import mark_error_retryable
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from transaction._transaction import Status as TransactionStatus  # as zope.sqlalchemy does
from zope.sqlalchemy.datamanager import join_transaction

from webapp.write_gate import WriteGate

BUSY_TIMEOUT_MS = 5000

# Primary result codes (the low byte of the extended code) that call for a retry.
SQLITE_BUSY = 5
SQLITE_LOCKED = 6

# Engines made in this process, so that a preloading server can drop inherited
# connections after fork (a SQLite handle must never cross a fork).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()

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

    gate = WriteGate(engine.url.database, busy_timeout_ms / 1000)

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


def session_factories(
    bind: Engine | Connection, **options: Any
) -> dict[str, sessionmaker[Session]]:
    """Session factories for reading and writing requests over one engine or connection.

    Tests pass a connection inside an outer transaction, with
    join_transaction_mode="create_savepoint", to roll each test back.
    """
    read_bind = reader(bind) if isinstance(bind, Engine) else bind
    write = sessionmaker(bind=bind, expire_on_commit=False, **options)
    RequestTransactionJoin().listen(write)
    return {
        "read": sessionmaker(bind=read_bind, expire_on_commit=False, **options),
        "write": write,
    }


def writes(request: Any) -> bool:
    """Whether a request may change data: only those run inside a managed transaction."""
    return request.method not in ("GET", "HEAD")


def request_session(request: Any) -> Session:
    """`request.dbsession`: a session for this request, of the kind its method needs."""
    factories = request.registry["dbsession_factories"]
    if not writes(request):
        # A read has nothing to commit: no transaction manager, no data manager and
        # its seven session listeners, just the connection back to the pool at the end.
        reading: Session = factories["read"](info={"request": request})
        request.add_finished_callback(lambda _request: reading.close())
        return reading
    # pyramid_tm commits or aborts; views never commit (RequestTransactionJoin).
    session: Session = factories["write"](info={"request": request})
    return session


class RequestTransactionJoin:
    """zope.sqlalchemy's session listeners, registered once on the write sessions'
    factory rather than on each session (seven listeners a request, a fifth of a
    create's time): each session finds its request's transaction manager in its info.
    Only the two that matter here: writes go through Core statements, which no ORM
    event reports, so webapp.notes marks its changes itself.
    """

    @staticmethod
    def _manager(session: Session) -> Any:
        return session.info["request"].tm

    def after_begin(self, session: Session, _transaction: Any, _connection: Any) -> None:
        join_transaction(session, transaction_manager=self._manager(session))

    def before_commit(self, session: Session) -> None:
        committing = self._manager(session).get().status == TransactionStatus.COMMITTING
        assert session.in_nested_transaction() or committing, (
            "commit through the transaction manager (pyramid_tm), not the session"
        )

    def listen(self, factory: Any) -> None:
        event.listen(factory, "after_begin", self.after_begin)
        event.listen(factory, "before_commit", self.before_commit)


def includeme(config: Any) -> None:
    """Session factories for `request.dbsession` (see webapp.app_request)."""
    config.registry["dbsession_factories"] = session_factories(
        config.get_settings()["webapp.engine"]
    )
