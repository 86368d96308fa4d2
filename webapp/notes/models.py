"""The declarative models. Alembic migrations must match them: a test autogenerates
against a migrated file and expects no difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names: SQLite batch migrations recreate tables and need to name
# the constraints they carry over.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The full-text index is a virtual table with shadow tables that the models do not map;
# every name that starts with this belongs to it and is maintained by triggers.
FTS_TABLE = "notes_fts"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Naive UTC: SQLite has no time zone type, so every stored time is UTC by rule."""
    return datetime.now(UTC).replace(tzinfo=None)


class NoteShape:
    """What a note looks like to clients, shared by the mapped Note and NoteRecord."""

    id: Any
    title: Any
    body: Any
    tags: Any
    created_at: Any
    updated_at: Any
    version: Any

    @property
    def etag(self) -> str:
        return f'"v{self.version}"'

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "created_at": iso_utc(self.created_at),
            "updated_at": iso_utc(self.updated_at),
            "version": self.version,
        }


class Note(NoteShape, Base):
    __tablename__ = "notes"
    # AUTOINCREMENT: ids are never reused after a delete, so a stale cursor or ETag can
    # never point at a different note.
    __table_args__ = (
        CheckConstraint("version >= 1", name="version_positive"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


@dataclass(slots=True, frozen=True)
class NoteRecord(NoteShape):
    """A note as read, outside any session: what GET requests show. Making one costs a
    fraction of a mapped instance, whose attribute instrumentation reads never need.
    """

    id: int
    title: str
    body: str
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


def iso_utc(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
