"""Exception views: every error leaves the service as application/problem+json.

Client errors get a precise detail. Storage trouble gets 507 or 503 with Retry-After,
so that clients and load balancers back off instead of hammering. Anything unexpected
is a bare 500 with the request id; the traceback goes to the log only.
"""

from __future__ import annotations

import logging

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken, PredicateMismatch, URLDecodeError
from pyramid.httpexceptions import HTTPException
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config, notfound_view_config
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from webapp.db.engine import is_busy, sqlite_code
from webapp.http import problems
from webapp.http.problems import Problem
from webapp.routes import ALLOWED_METHODS

log = logging.getLogger(__name__)

# Primary SQLite result codes (https://sqlite.org/rescode.html).
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14


@exception_view_config(Problem)
def problem(exc: Problem, request: Request) -> Response:
    return problems.response(
        request, exc.status, exc.detail, errors=exc.errors, headers=exc.headers
    )


@notfound_view_config()
def not_found(exc: HTTPException, request: Request) -> Response:
    route = request.matched_route
    if isinstance(exc, PredicateMismatch) and route is not None:
        allowed = ALLOWED_METHODS[route.name]
        return problems.response(
            request,
            405,
            f"{request.method} is not allowed here; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    return problems.response(request, 404, "no such resource; see /openapi.json for the routes")


@exception_view_config(BadCSRFToken)
@exception_view_config(BadCSRFOrigin)
def bad_csrf(_exc: Exception, request: Request) -> Response:
    # 403, as for any refused authority: the request is well formed but not trusted.
    return problems.response(
        request, 403, "the form's CSRF token is missing or wrong; reload the page and submit again"
    )


@exception_view_config(URLDecodeError)
def bad_url(_exc: Exception, request: Request) -> Response:
    return problems.response(request, 400, "the URL is not valid UTF-8")


@exception_view_config(HTTPException)
def http_exception(exc: HTTPException, request: Request) -> Response | HTTPException:
    if exc.code is None or exc.code < 400:
        return exc  # redirects and the like pass through unchanged
    detail = str(exc.detail or exc.explanation or exc.title)
    return problems.response(request, exc.code, detail)


@exception_view_config(DBAPIError)
def database_error(exc: DBAPIError, request: Request) -> Response:
    code = sqlite_code(exc)
    request_id = request.environ.get("webapp.request_id")
    if code == SQLITE_FULL:
        log.error("write refused: database or disk is full", extra={"request_id": request_id})
        return problems.response(
            request,
            507,
            "the database's disk is full, so this change was not saved; reads still work, "
            "retry once space is freed",
            headers={"Retry-After": "30"},
        )
    if is_busy(exc):
        log.warning("database stayed locked past busy_timeout", extra={"request_id": request_id})
        return problems.response(
            request,
            503,
            "the database is busy with other writes; retry shortly",
            headers={"Retry-After": "1"},
        )
    if code in (SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN):
        log.error("database unavailable: %s", exc.orig, extra={"request_id": request_id})
        return problems.response(
            request,
            503,
            "the database cannot be written or read right now; retry later",
            headers={"Retry-After": "30"},
        )
    return unexpected(exc, request)


@exception_view_config(PoolTimeout)
def pool_exhausted(_exc: PoolTimeout, request: Request) -> Response:
    log.warning("no database connection free within the pool timeout")
    return problems.response(
        request,
        503,
        "the service is at capacity; retry shortly",
        headers={"Retry-After": "1"},
    )


@exception_view_config(Exception)
def unexpected(exc: Exception, request: Request) -> Response:
    request_id = request.environ.get("webapp.request_id")
    log.error("unhandled %s", type(exc).__name__, exc_info=exc, extra={"request_id": request_id})
    return problems.response(
        request,
        500,
        f"internal error; quote request id {request_id} when you report it",
    )
