"""One database session per request, of the kind its method needs; a writing request's
session is joined to the transaction manager that pyramid_tm commits or aborts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from transaction._transaction import Status as TransactionStatus  # as zope.sqlalchemy does
from zope.sqlalchemy.datamanager import join_transaction

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
    event reports, so webapp.notes.store marks its changes itself.
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
