"""Opaque keyset-pagination cursors: the id of the last note on the previous page.

Clients must treat the value as opaque; base64 keeps them from building on its form.
"""

from __future__ import annotations

import base64
import binascii

from webapp.problems import Problem

ID_MAX = 2**63 - 1  # SQLite INTEGER


def encode(note_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{note_id}".encode()).decode().rstrip("=")


def decode(value: str) -> int:
    """The id after which the next page starts; a 400 for anything we did not issue."""
    try:
        padded = value + "=" * (-len(value) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError):
        raw = ""
    prefix, _, digits = raw.partition(":")
    if prefix != "id" or not (digits.isdigit() and len(digits) <= 19) or int(digits) < 1:
        raise Problem(400, "cursor is not one this service issued; use next_cursor as given")
    return int(digits)
