"""The HTML page: list and search notes, and a form that creates one without JavaScript."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.view import view_config

from webapp.http.problems import Problem
from webapp.notes import cursor, store
from webapp.notes.search import Q_MAX
from webapp.notes.validation import BODY_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX, validate


def _listing(request: Request) -> dict[str, Any]:
    q = request.GET.get("q", "")[:Q_MAX]
    raw_cursor = request.GET.get("cursor")
    try:
        before = cursor.decode(raw_cursor) if raw_cursor else None
    except Problem:
        before = None  # a mangled link shows the first page rather than an error
    items, last = store.page(request.dbsession, q=q, before=before)
    return {
        "q": q,
        "notes": items,
        "next_cursor": cursor.encode(last) if last is not None else None,
        "limits": {"title": TITLE_MAX, "body": BODY_MAX, "tags": TAGS_MAX, "tag": TAG_MAX},
        "errors": [],
        "form": {"title": "", "body": "", "tags": ""},
    }


@view_config(route_name="home", request_method="GET", renderer="webapp:templates/home.html")
def home(request: Request) -> dict[str, Any]:
    return _listing(request)


@view_config(route_name="home", request_method="POST", renderer="webapp:templates/home.html")
def create_from_form(request: Request) -> Any:
    # Pyramid has checked the CSRF token before this runs (require_csrf is the default).
    form = {name: request.POST.get(name, "") for name in ("title", "body", "tags")}
    tags = [tag.strip() for tag in form["tags"].split(",") if tag.strip()]
    try:
        data = validate({"title": form["title"].strip(), "body": form["body"], "tags": tags})
    except Problem as problem:
        context = _listing(request)
        context["errors"] = problem.errors or [{"field": "(form)", "message": problem.detail}]
        context["form"] = form
        request.response.status_int = 422
        return context
    store.create(request.dbsession, data)
    # Post/redirect/get: a reload of the result page must not post the note twice.
    return HTTPSeeOther(location=request.route_url("home"))
