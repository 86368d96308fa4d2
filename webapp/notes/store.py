"""What can be done to notes, independent of HTTP: the API and the page both use it."""

from __future__ import annotations

from dataclasses import replace as replace_fields
from typing import Any

from sqlalchemy import Integer, bindparam, column, insert, select, text, update
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import Session
from zope.sqlalchemy import mark_changed

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


def _record(row: Any) -> NoteRecord:
    return NoteRecord(*row)


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


def read(session: Session, note_id: int) -> NoteRecord | None:
    """The note as stored; a write request's first read also takes the write lock."""
    if not 1 <= note_id <= ID_MAX:
        return None
    row = session.connection().execute(_BY_ID, {"note_id": note_id}).first()
    return None if row is None else _record(row)


def _changed(session: Session) -> None:
    # Core statements bypass the ORM flush that would tell zope.sqlalchemy the session
    # holds changes; unmarked, pyramid_tm would end the transaction with a rollback.
    mark_changed(session, transaction_manager=session.info["request"].tm)


def create(session: Session, data: NoteInput) -> NoteRecord:
    now = utcnow()
    values = {"title": data.title, "body": data.body, "tags": data.tags}
    result = session.execute(
        insert(_NOTES).values(**values, created_at=now, updated_at=now, version=1)
    )
    _changed(session)
    (note_id,) = result.inserted_primary_key  # type: ignore[attr-defined]
    return NoteRecord(note_id, data.title, data.body, list(data.tags), now, now, 1)


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
