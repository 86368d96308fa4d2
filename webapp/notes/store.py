"""What can be done to notes, independent of HTTP: the API and the page both use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace as replace_fields
from typing import Any

from sqlalchemy import Integer, bindparam, column, insert, select, text, update
from sqlalchemy import delete as delete_rows
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed

from webapp.db.engine import fetch_one, is_reader, write_one
from webapp.notes.cursor import ID_MAX
from webapp.notes.models import Note, NoteRecord, utcnow
from webapp.notes.search import fts_query
from webapp.notes.validation import NoteInput

LIMIT_DEFAULT = 20
LIMIT_MAX = 100

# Reads go through SQLAlchemy Core, not the ORM's identity map and unit of work: a
# read changes nothing, and the ORM's bookkeeping cost more than the query itself.
# The notes they return are plain records, in no session.
_NOTES = Note.metadata.tables[Note.__tablename__]
_BY_ID = select(_NOTES).where(_NOTES.c.id == bindparam("note_id"))
# The same lookup and insert as SQLite's own SQL with the columns' own conversions, for
# requests that go straight to the driver: a read request's lookup and every create.
# The Session, Connection and result layers around one statement cost more than it.
_DIALECT = sqlite.dialect()
_BY_ID_SQL = str(_BY_ID.compile(dialect=_DIALECT))
_INSERTED = ("title", "body", "tags", "created_at", "updated_at", "version")
# Built once: composing the INSERT with .values() per request cost a tenth of a create.
_INSERT = insert(_NOTES).values({name: bindparam(name) for name in _INSERTED})
_INSERT_COMPILED = _INSERT.compile(dialect=_DIALECT)
_INSERT_SQL = str(_INSERT_COMPILED)
assert tuple(_INSERT_COMPILED.positiontup or ()) == _INSERTED  # the driver's parameter order


def _conversion(processor: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    # SQLite stores JSON and DateTime as text, so each has a conversion both ways.
    assert processor is not None
    return processor


_TAGS_TYPE = _NOTES.c.tags.type.dialect_impl(_DIALECT)
_TIME_TYPE = _NOTES.c.created_at.type.dialect_impl(_DIALECT)
_TAGS_IN = _conversion(_TAGS_TYPE.bind_processor(_DIALECT))
_TIME_IN = _conversion(_TIME_TYPE.bind_processor(_DIALECT))
_TAGS_OUT = _conversion(_TAGS_TYPE.result_processor(_DIALECT, None))
_TIME_OUT = _conversion(_TIME_TYPE.result_processor(_DIALECT, None))


def _record(row: Any) -> NoteRecord:
    return NoteRecord(*row)


def _driver_record(row: Any) -> NoteRecord:
    """A row as the driver returns it: tags as JSON text, times in SQLAlchemy's format."""
    note_id, title, body, tags, created_at, updated_at, version = row
    return NoteRecord(
        note_id, title, body, _TAGS_OUT(tags), _TIME_OUT(created_at), _TIME_OUT(updated_at),
        version,
    )  # fmt: skip


def page(
    session: Session, *, q: str = "", limit: int = LIMIT_DEFAULT, before: int | None = None
) -> tuple[list[NoteRecord], int | None]:
    """Newest first, `limit` notes older than id `before`; and the id to continue from."""
    stmt = select(_NOTES).order_by(_NOTES.c.id.desc()).limit(limit + 1)
    if before is not None and before <= ID_MAX:  # beyond int64 SQLite cannot compare
        stmt = stmt.where(_NOTES.c.id < before)
    match = fts_query(q)
    if match is not None:
        hits = text("SELECT rowid FROM notes_fts WHERE notes_fts MATCH :match").bindparams(
            match=match
        )
        stmt = stmt.where(_NOTES.c.id.in_(hits.columns(column("rowid", Integer))))
    notes = [_record(row) for row in session.connection().execute(stmt)]
    if len(notes) > limit:
        notes = notes[:limit]
        return notes, notes[-1].id
    return notes, None


def read(db: Session | Connection | Engine, note_id: int) -> NoteRecord | None:
    """The note as stored; a write request's first read also takes the write lock.

    `db` is a write request's session, or what a read request reads through without one
    (webapp.db.session.read_bind).
    """
    if not 1 <= note_id <= ID_MAX:
        return None
    if is_reader(db):
        found = fetch_one(db, _BY_ID_SQL, (note_id,))  # type: ignore[arg-type]
        return None if found is None else _driver_record(found)
    connection = db.connection() if isinstance(db, Session) else db
    row = connection.execute(_BY_ID, {"note_id": note_id}).first()  # type: ignore[union-attr]
    return None if row is None else _record(row)


def _changed(session: Session) -> None:
    # Core statements bypass the ORM flush that would tell zope.sqlalchemy the session
    # holds changes; unmarked, pyramid_tm would end the transaction with a rollback.
    mark_changed(session, transaction_manager=session.info["request"].tm)


def create(db: Session | Connection | Engine, data: NoteInput) -> NoteRecord:
    """A new note. On an engine it commits on its own: a single INSERT needs no
    transaction manager around it. In a session or on a connection it stays in the
    caller's transaction (the page's, under pyramid_tm; the tests' outer one).
    """
    now = utcnow()
    if isinstance(db, Engine):
        times = _TIME_IN(now)
        params = (data.title, data.body, _TAGS_IN(data.tags), times, times, 1)
        note_id = write_one(db, _INSERT_SQL, params)
    else:
        values = dict(zip(_INSERTED, (data.title, data.body, data.tags, now, now, 1), strict=True))
        result = db.execute(_INSERT, values)
        if isinstance(db, Session):
            _changed(db)
        (note_id,) = result.inserted_primary_key  # type: ignore[attr-defined]
    return NoteRecord(note_id, data.title, data.body, list(data.tags), now, now, 1)  # type: ignore[arg-type]


def replace(session: Session, note: NoteRecord, data: NoteInput) -> NoteRecord | None:
    """`note` overwritten, if it is still at the version the caller read; None if not.

    The version check is in the UPDATE itself, so even a caller that skipped reading
    under the write lock cannot overwrite a newer version.
    """
    now = utcnow()
    result = session.execute(
        update(_NOTES)
        .where(_NOTES.c.id == note.id, _NOTES.c.version == note.version)
        .values(title=data.title, body=data.body, tags=data.tags, updated_at=now,
                version=_NOTES.c.version + 1)
    )  # fmt: skip
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    _changed(session)
    return replace_fields(
        note, title=data.title, body=data.body, tags=list(data.tags), updated_at=now,
        version=note.version + 1,
    )  # fmt: skip


def delete(session: Session, note: NoteRecord) -> None:
    session.execute(delete_rows(_NOTES).where(_NOTES.c.id == note.id))
    _changed(session)
