"""A writing request's session belongs to that request's transaction manager: pyramid_tm
commits or aborts it, a change nobody marked is not committed, and the session itself
refuses to commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import transaction
from sqlalchemy import Table, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed

from webapp.db.session import session_factories
from webapp.notes.models import Note

from .conftest import migrated_engine

# The notes table for Core statements (a mapped class's __table__ is typed as any FromClause).
NOTES = cast(Table, Note.__table__)


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Engine]:
    # Its own file: these tests commit for real, outside the rolled-back test transaction.
    engine = migrated_engine(tmp_path / "app.db")
    yield engine
    engine.dispose()


def _request_session(engine: Engine) -> tuple[Any, Session]:
    request = SimpleNamespace(tm=transaction.TransactionManager(explicit=True))
    session = session_factories(engine)["write"](info={"request": request})
    return request.tm, session


def _titles(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        titles = conn.exec_driver_sql("SELECT title FROM notes ORDER BY id").scalars().all()
        conn.rollback()
    return list(titles)


def test_a_marked_core_write_is_committed_by_the_manager(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.execute(insert(NOTES).values(title="kept", body="", tags=[]))
    mark_changed(session, transaction_manager=tm)
    tm.commit()
    assert _titles(fresh_engine) == ["kept"]


def test_an_unmarked_core_write_ends_in_a_rollback(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.execute(insert(NOTES).values(title="unmarked", body="", tags=[]))
    tm.commit()
    assert _titles(fresh_engine) == []


def test_an_orm_flush_marks_the_session_changed(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.add(Note(title="flushed"))
    session.flush()
    tm.commit()
    assert _titles(fresh_engine) == ["flushed"]


def test_an_orm_update_statement_marks_the_session_changed(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.add(Note(title="before"))
    tm.commit()
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.execute(update(Note).where(Note.title == "before").values(title="after"))
    tm.commit()
    assert _titles(fresh_engine) == ["after"]


def test_abort_rolls_back_a_marked_write(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.execute(insert(NOTES).values(title="aborted", body="", tags=[]))
    mark_changed(session, transaction_manager=tm)
    tm.abort()
    assert _titles(fresh_engine) == []


def test_the_session_refuses_to_commit_by_itself(fresh_engine):
    tm, session = _request_session(fresh_engine)
    tm.begin()
    session.execute(insert(NOTES).values(title="sneaky", body="", tags=[]))
    with pytest.raises(AssertionError, match="committed using the transaction manager"):
        session.commit()
    tm.abort()
    assert _titles(fresh_engine) == []


def test_each_request_joins_its_own_manager(fresh_engine):
    first_tm, first = _request_session(fresh_engine)
    second_tm, second = _request_session(fresh_engine)
    first_tm.begin()
    first.execute(insert(NOTES).values(title="first", body="", tags=[]))
    mark_changed(first, transaction_manager=first_tm)
    first_tm.commit()
    second_tm.begin()
    second.execute(insert(NOTES).values(title="second", body="", tags=[]))
    mark_changed(second, transaction_manager=second_tm)
    second_tm.abort()
    assert _titles(fresh_engine) == ["first"]
