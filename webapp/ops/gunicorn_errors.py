"""Gunicorn's own refusals (a malformed request line, header or Content-Length, headers
too large) answered as problem+json like every error of the app, not as an HTML page.

Gunicorn rejects such requests before the WSGI app sees them and renders the refusal
with `gunicorn.util.write_error`, its only renderer; Gunicorn keeps choosing the status
and the message, this module only replaces how they are written. Installed from
gunicorn.conf.py, so the master sets it before forking the workers.
"""

from __future__ import annotations

import json
import socket

import gunicorn.util

DETAIL_MAX = 200


def problem_bytes(status: int, reason: str, message: str) -> bytes:
    """The whole HTTP response: status line, headers and a problem+json body."""
    detail = message or reason
    if len(detail) > DETAIL_MAX:  # the message may echo a huge header back
        detail = detail[:DETAIL_MAX] + "…"
    body = json.dumps({
        "type": "about:blank",
        "title": reason,
        "status": status,
        "detail": detail,
        "request_id": None,
    }).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same arguments)."""
    gunicorn.util.write_nonblock(sock, problem_bytes(status_int, reason, mesg))


def install() -> None:
    gunicorn.util.write_error = write_problem
