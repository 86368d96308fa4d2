"""WSGI middleware that refuses oversized request bodies before anything reads them.

It sits outside Pyramid because pyramid_retry copies the whole body up front to be able
to replay it. A declared Content-Length over the limit is refused unread; a chunked
body is read only up to the limit plus one byte. The refusal itself is rendered inside
Pyramid (see webapp.http.request_checks), so it carries the same headers as every other response.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

# Bytes in any request body, the API's JSON and the page's form alike.
REQUEST_MAX = 1024 * 1024

TOO_LARGE = "webapp.body_too_large"
UNREADABLE = "webapp.body_unreadable"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyLimit:
    def __init__(self, app: WSGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    @property
    def registry(self) -> Any:
        """The wrapped Pyramid app's registry (tests and tooling reach in through it)."""
        return self.app.registry  # type: ignore[attr-defined]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        declared = environ.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if declared and not chunked:
            if not declared.isdigit():
                self._replace(environ, b"", UNREADABLE)
            elif int(declared) > self.limit:
                self._replace(environ, b"", TOO_LARGE)
        elif chunked or environ.get("wsgi.input_terminated"):
            try:
                data = environ["wsgi.input"].read(self.limit + 1)
            except Exception:  # a broken chunked stream is the client's fault
                self._replace(environ, b"", UNREADABLE)
            else:
                if len(data) > self.limit:
                    self._replace(environ, b"", TOO_LARGE)
                else:
                    self._replace(environ, data, None)
        return self.app(environ, start_response)

    @staticmethod
    def _replace(environ: dict[str, Any], data: bytes, flag: str | None) -> None:
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        if flag is not None:
            environ[flag] = True
