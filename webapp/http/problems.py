"""RFC 9457 problem details: the one shape every error response of the service has."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from a view to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


def title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title(status),
        "status": status,
        "detail": detail,
        "instance": _instance(request),
        "request_id": request.environ.get("webapp.request_id"),
    }
    if body["instance"] is None:
        del body["instance"]
    if errors:
        body["errors"] = list(errors)
    resp = Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_JSON,
        charset=None,
    )
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _instance(request: Request) -> str | None:
    """The request path, unless it is not valid UTF-8 or absurdly long."""
    try:
        path = request.path_info
    except UnicodeDecodeError:
        return None
    return path if len(path) <= 2000 else None
