"""Refusing requests that cannot be read, before any view or CSRF check touches them.

WebOb decodes the query string and form bodies lazily and raises plain Python errors on
bad input; forcing that here turns client mistakes into 400s instead of 500s.
"""

from __future__ import annotations

from pyramid.events import NewRequest

from webapp.http import body_limit
from webapp.http.body_limit import REQUEST_MAX
from webapp.http.problems import Problem

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_unreadable_requests(event: NewRequest) -> None:
    request = event.request
    environ = request.environ
    if environ.get(body_limit.TOO_LARGE):
        raise Problem(413, f"request body is larger than {REQUEST_MAX} bytes; send less")
    if environ.get(body_limit.UNREADABLE):
        raise Problem(400, "request body could not be read: bad Content-Length or chunking")
    try:
        request.GET  # noqa: B018 - parsed once and cached by WebOb
    except UnicodeDecodeError:
        raise Problem(400, "the query string is not valid UTF-8 once percent-decoded") from None
    if request.method == "POST" and request.content_type in FORM_TYPES:
        # The CSRF check reads the form first; a malformed one must not become a 500.
        try:
            request.POST  # noqa: B018 - parsed once and cached by WebOb
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise Problem(400, "form body could not be parsed; check its encoding") from None
