"""The JSON API under /api/notes.

CSRF: these views are exempt from Pyramid's CSRF check (require_csrf=False). Every
write here demands `Content-Type: application/json`, which an HTML form on another
site cannot send, and a cross-site fetch with that type needs a CORS preflight that
this service never grants. So a forged cross-site request cannot reach a write.
"""

from __future__ import annotations

import json
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from webapp.db.session import read_bind, write_bind, writes
from webapp.http.problems import Problem
from webapp.notes import cursor, store
from webapp.notes.models import NoteRecord, NoteShape
from webapp.notes.search import Q_MAX
from webapp.notes.validation import NoteInput, parse_json, validate
from webapp.routes import ROUTES

JSON_TYPES = ("application/json",)


def _note_response(note: NoteShape, status: int = 200) -> Response:
    # The headers in one list: WebOb's property setters parse and rebuild them one by one.
    body = json.dumps(note.as_json(), separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("ETag", note.etag),
    ]
    return Response(body=body, status=status, headerlist=headers)


def transaction_managed(request: Request) -> bool:
    """pyramid_tm's activate_hook: the requests it runs in a transaction of its own.

    Not reads, which need none, nor the API's creates: their one INSERT commits in the
    data layer (store.create), and beginning and committing an empty transaction around
    it cost a tenth of a create. Updates and deletes read, check and write in one.
    """
    if request.method == "POST" and request.path_info == ROUTES["notes"][0]:
        return False
    return writes(request)


def _note_id(request: Request) -> int:
    raw = request.matchdict["id"]
    # Digits only and at most 19 of them: never hand SQLite a value beyond int64.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
        raise Problem(404, f"no note with id {raw[:40]!r}")
    return int(raw)


def _missing(note_id: int) -> Problem:
    return Problem(404, f"no note with id {note_id}")


def _load(request: Request) -> NoteRecord:
    note_id = _note_id(request)
    note = store.read(request.dbsession if writes(request) else read_bind(request), note_id)
    if note is None:
        raise _missing(note_id)
    return note


def _input(request: Request) -> NoteInput:
    if request.content_type.lower() not in JSON_TYPES:
        shown = (request.content_type or "none")[:100]
        raise Problem(
            415,
            f"Content-Type {shown!r} is not supported; send application/json",
            headers={"Accept-Post": "application/json"} if request.method == "POST" else None,
        )
    return validate(parse_json(request.body))


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.GET.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and low <= int(raw) <= high):
        raise Problem(400, f"{name}={raw[:20]!r} is not an integer from {low} to {high}")
    return int(raw)


def list_notes(request: Request) -> dict[str, Any]:
    limit = _query_int(request, "limit", store.LIMIT_DEFAULT, 1, store.LIMIT_MAX)
    q = request.GET.get("q", "")
    if len(q) > Q_MAX:
        raise Problem(400, f"q is {len(q)} characters; search with at most {Q_MAX}")
    raw_cursor = request.GET.get("cursor")
    before = cursor.decode(raw_cursor) if raw_cursor is not None else None
    items, last = store.page(request.dbsession, q=q, limit=limit, before=before)
    return {
        "items": [note.as_json() for note in items],
        "next_cursor": cursor.encode(last) if last is not None else None,
    }


def create_note(request: Request) -> Response:
    note = store.create(write_bind(request), _input(request))
    response = _note_response(note, status=201)
    response.location = request.route_url("note", id=note.id)
    return response


def get_note(request: Request) -> Response:
    return _note_response(_load(request))


IF_MATCH_MAX = 200


def _if_match_present(request: Request) -> bool:
    value = request.headers.get("If-Match")
    if value is not None and len(value) > IF_MATCH_MAX:
        raise Problem(400, f"If-Match is longer than {IF_MATCH_MAX} characters; send one ETag")
    return value is not None


def _precondition(request: Request, note: NoteRecord) -> None:
    if not _if_match_present(request):
        return
    if note.etag.strip('"') not in request.if_match:
        raise Problem(
            412,
            f"note {note.id} has changed (now ETag {note.etag}); GET it again and retry",
            headers={"ETag": note.etag},
        )


def replace_note(request: Request) -> Response:
    if not _if_match_present(request):
        raise Problem(428, "If-Match is required: send the ETag from your last GET of this note")
    data = _input(request)
    note = _load(request)
    _precondition(request, note)
    replaced = store.replace(request.dbsession, note, data)
    if replaced is None:  # pragma: no cover - needs a race
        raise Problem(412, f"note {note.id} changed while updating; GET it again and retry")
    return _note_response(replaced)


def delete_note(request: Request) -> Response:
    note = _load(request)
    _precondition(request, note)
    store.delete(request.dbsession, note)
    return Response(status=204)


def includeme(config: Any) -> None:
    # Pyramid tries a route's views in the order they are added, and each one whose
    # method does not match costs a PredicateMismatch raised and caught: the busiest
    # method of each route goes first (a venusian scan would add them by name).
    config.add_view(get_note, route_name="note", request_method="GET")
    config.add_view(replace_note, route_name="note", request_method="PUT", require_csrf=False)
    config.add_view(delete_note, route_name="note", request_method="DELETE", require_csrf=False)
    config.add_view(create_note, route_name="notes", request_method="POST", require_csrf=False)
    config.add_view(list_notes, route_name="notes", request_method="GET", renderer="json")
