"""Opaque keyset-pagination cursors: the id of the last note on the previous page.

A cursor is the id as 8 big-endian bytes in unpadded base64url: always 11 characters.
Every string of that shape decodes to some position, so the OpenAPI pattern describes
exactly the cursors the service accepts; anything else is a 400.
"""

from __future__ import annotations

import base64
import binascii
import re

from webapp.http.problems import Problem

ID_MAX = 2**63 - 1  # SQLite INTEGER
PATTERN = r"^[A-Za-z0-9_-]{11}$"
_SHAPE = re.compile(PATTERN)


def encode(note_id: int) -> str:
    return base64.urlsafe_b64encode(note_id.to_bytes(8, "big")).decode().rstrip("=")


def decode(value: str) -> int:
    """The id after which the next page starts; a 400 for anything of another shape."""
    if not _SHAPE.fullmatch(value):
        raise Problem(400, "cursor is not one this service issued; use next_cursor as given")
    try:
        raw = base64.urlsafe_b64decode(value + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only base64
        raise Problem(400, "cursor is not valid base64url") from None
    # Positions beyond the largest id sort before every note: the page starts at the
    # newest (webapp.notes.store.page ignores a bound that no id can reach).
    return min(int.from_bytes(raw, "big"), ID_MAX + 1)
