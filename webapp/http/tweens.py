"""What every response carries, errors included: a request id and security headers.

Both tweens sit at the top of the chain, so they also wrap responses that exception
views render and those that pyramid_tm produces when a commit fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from webapp.ops import jsonlog

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from a proxy are kept only if they are short and plain, so logs cannot be forged.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

SECURITY_HEADERS = {
    # No inline script or style anywhere: the page uses one stylesheet from /static.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

Handler = Callable[[Request], Response]


def request_id_tween_factory(handler: Handler, _registry: Any) -> Handler:
    def request_id_tween(request: Request) -> Response:
        # Kept in the environ so that every pyramid_retry attempt shares one id.
        current = request.environ.get("webapp.request_id")
        if current is None:
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            current = incoming if _SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
            request.environ["webapp.request_id"] = current
        token = jsonlog.request_id.set(current)
        try:
            response = handler(request)
        finally:
            jsonlog.request_id.reset(token)
        response.headers[REQUEST_ID_HEADER] = current
        return response

    return request_id_tween


_SECURITY_HEADER_LIST = [(name.lower(), name, value) for name, value in SECURITY_HEADERS.items()]


def security_headers_tween_factory(handler: Handler, _registry: Any) -> Handler:
    def security_headers_tween(request: Request) -> Response:
        response = handler(request)
        # One pass over the headers a view set itself (they win), not one per header.
        headers = response.headerlist
        present = {name.lower() for name, _value in headers}
        headers.extend(
            (name, value) for lower, name, value in _SECURITY_HEADER_LIST if lower not in present
        )
        return response

    return security_headers_tween
