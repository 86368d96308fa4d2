"""Every URL the service answers, and the methods each allows (for 405 Allow headers).

openapi.json documents the same table; a test walks it against these routes.
"""

from __future__ import annotations

from typing import Any

ROUTES = {
    # name: (pattern, allowed methods)
    "home": ("/", ("GET", "HEAD", "POST")),
    "healthz": ("/healthz", ("GET", "HEAD")),
    "readyz": ("/readyz", ("GET", "HEAD")),
    "version": ("/version", ("GET", "HEAD")),
    "openapi": ("/openapi.json", ("GET", "HEAD")),
    "notes": ("/api/notes", ("GET", "HEAD", "POST")),
    "note": ("/api/notes/{id}", ("GET", "HEAD", "PUT", "DELETE")),
}
ALLOWED_METHODS = {name: methods for name, (_pattern, methods) in ROUTES.items()}


def includeme(config: Any) -> None:
    for name, (pattern, _methods) in ROUTES.items():
        config.add_route(name, pattern)
    config.add_static_view("static", "webapp:static", cache_max_age=3600)
