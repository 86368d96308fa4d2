"""What can be done to notes, independent of HTTP: the API and the page both use it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, column, select, text, update
from sqlalchemy.orm import Session

from webapp.cursor import ID_MAX
from webapp.models import Note, NoteRecord, utcnow
from webapp.note_input import NoteInput
from webapp.search import fts_query

LIMIT_DEFAULT = 20
LIMIT_MAX = 100

# Reads go through SQLAlchemy Core, not the ORM's identity map and unit of work: a
# read changes nothing, and the ORM's bookkeeping cost more than the query itself.
# The notes they return are plain records, in no session.
_NOTES = Note.__table__
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
    """The note to show, in no session: for requests that will not change it."""
    if not 1 <= note_id <= ID_MAX:
        return None
    row = session.connection().execute(_BY_ID, {"note_id": note_id}).first()
    return None if row is None else _record(row)


def get(session: Session, note_id: int) -> Note | None:
    """The note to change, attached to `session`."""
    if not 1 <= note_id <= ID_MAX:
        return None
    return session.get(Note, note_id)


def create(session: Session, data: NoteInput) -> Note:
    now = utcnow()
    note = Note(
        title=data.title, body=data.body, tags=data.tags, created_at=now, updated_at=now, version=1
    )
    session.add(note)
    session.flush()
    return note


def replace(session: Session, note: Note, data: NoteInput) -> bool:
    """Overwrite `note` if it is still at the version the caller read; False if not.

    The version check is in the UPDATE itself, so even a caller that skipped reading
    under the write lock cannot overwrite a newer version.
    """
    result = session.execute(
        update(Note)
        .where(Note.id == note.id, Note.version == note.version)
        .values(
            title=data.title,
            body=data.body,
            tags=data.tags,
            updated_at=utcnow(),
            version=Note.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.refresh(note)
    return True


def delete(session: Session, note: Note) -> None:
    session.delete(note)
    session.flush()
