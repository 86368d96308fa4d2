"""What can be done to notes, independent of HTTP: the API and the page both use it."""

from __future__ import annotations

from sqlalchemy import Integer, column, select, text, update
from sqlalchemy.orm import Session

from webapp.cursor import ID_MAX
from webapp.models import Note, utcnow
from webapp.note_input import NoteInput
from webapp.search import fts_query

LIMIT_DEFAULT = 20
LIMIT_MAX = 100


def page(
    session: Session, *, q: str = "", limit: int = LIMIT_DEFAULT, before: int | None = None
) -> tuple[list[Note], int | None]:
    """Newest first, `limit` notes older than id `before`; and the id to continue from."""
    stmt = select(Note).order_by(Note.id.desc()).limit(limit + 1)
    if before is not None and before <= ID_MAX:  # beyond int64 SQLite cannot compare
        stmt = stmt.where(Note.id < before)
    match = fts_query(q)
    if match is not None:
        hits = text("SELECT rowid FROM notes_fts WHERE notes_fts MATCH :match").bindparams(
            match=match
        )
        stmt = stmt.where(Note.id.in_(hits.columns(column("rowid", Integer))))
    notes = list(session.scalars(stmt))
    if len(notes) > limit:
        notes = notes[:limit]
        return notes, notes[-1].id
    return notes, None


def get(session: Session, note_id: int) -> Note | None:
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
