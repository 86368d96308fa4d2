"""Notes: the models, validation of what clients send, search, pagination cursors,
what can be done to notes (store), and the two ways in: the JSON API (api) and the
HTML page (page).
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.include("webapp.notes.api")
    config.scan("webapp.notes.page")
