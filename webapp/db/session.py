"""One database session per request, of the kind its method needs; a writing request's
session is joined to the transaction manager that pyramid_tm commits or aborts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from zope.sqlalchemy import ZopeTransactionEvents

from webapp.db.engine import reader


def session_factories(
    bind: Engine | Connection, **options: Any
) -> dict[str, sessionmaker[Session]]:
    """Session factories for reading and writing requests over one engine or connection.

    Tests pass a connection inside an outer transaction, with
    join_transaction_mode="create_savepoint", to roll each test back.
    """
    read_bind = reader(bind) if isinstance(bind, Engine) else bind
    write = sessionmaker(bind=bind, expire_on_commit=False, **options)
    join_request_transactions(write)
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
    # pyramid_tm commits or aborts; views never commit (join_request_transactions).
    session: Session = factories["write"](info={"request": request})
    return session


def read_bind(request: Any) -> Engine | Connection:
    """What a read request's sessions would be bound to, for a lookup that needs no
    Session at all: making and closing one cost as much as the SELECT (GET of a note).
    """
    bind: Engine | Connection = request.registry["dbsession_factories"]["read"].kw["bind"]
    return bind


def write_bind(request: Any) -> Engine | Connection:
    """What a write request's sessions would be bound to, for a write that commits on
    its own (webapp.notes.store.create) and so needs neither a Session nor pyramid_tm.
    """
    bind: Engine | Connection = request.registry["dbsession_factories"]["write"].kw["bind"]
    return bind


def _events(session: Session) -> ZopeTransactionEvents:
    """zope.sqlalchemy's handlers, bound to the transaction manager of the session's request."""
    return ZopeTransactionEvents(transaction_manager=session.info["request"].tm)


def join_request_transactions(factory: sessionmaker[Session]) -> None:
    """Every zope.sqlalchemy session event, listened to once on the write sessions' factory.

    zope.sqlalchemy.register() on each request's session does the same, but adding seven
    listeners to every session made a create cost a quarter more instructions (measured
    over POST /api/notes). Here each event goes to zope.sqlalchemy's own handler for the
    transaction manager in the session's info.
    """
    event.listen(factory, "after_begin", lambda s, t, c: _events(s).after_begin(s, t, c))
    event.listen(factory, "after_attach", lambda s, i: _events(s).after_attach(s, i))
    event.listen(factory, "after_flush", lambda s, f: _events(s).after_flush(s, f))
    event.listen(factory, "after_bulk_update", lambda c: _events(c.session).after_bulk_update(c))
    event.listen(factory, "after_bulk_delete", lambda c: _events(c.session).after_bulk_delete(c))
    event.listen(factory, "before_commit", lambda s: _events(s).before_commit(s))
    # Marks ORM inserts, updates and deletes; the store's Core statements it cannot see,
    # so webapp.notes.store marks those itself.
    event.listen(factory, "do_orm_execute", lambda st: _events(st.session).do_orm_execute(st))
