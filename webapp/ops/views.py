"""Endpoints for operators and orchestrators: liveness, readiness, build info, the spec."""

from __future__ import annotations

import json
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from sqlalchemy.exc import SQLAlchemyError

from webapp import sqlite_floor
from webapp.db import schema
from webapp.db.engine import reader
from webapp.http.problems import Problem
from webapp.ops import readiness, replica


@view_config(route_name="healthz", request_method="GET", renderer="json")
def healthz(_request: Request) -> dict[str, str]:
    # Liveness only: a database outage must not get healthy workers restarted.
    return {"status": "ok"}


@view_config(route_name="readyz", request_method="GET", renderer="json")
def readyz(request: Request) -> dict[str, Any]:
    if Path(request.registry.settings["webapp.drain_marker"]).exists():
        raise Problem(
            503,
            "this app slot is draining: the proxy sends new requests to the other one",
            headers={"Retry-After": "5"},
        )
    engine = request.registry.settings["webapp.engine"]
    reason = readiness.problem(engine)
    if reason is not None:
        raise Problem(503, reason, headers={"Retry-After": "5"})
    # The slot says which app answered: `app`, or `app_next` while a release switches.
    body: dict[str, Any] = {
        "status": "ok",
        "schema_revision": schema.head(),
        "slot": request.registry.settings["webapp.slot"],
    }
    replica_settings = request.registry.settings["webapp.replica"]
    if replica_settings is not None:
        # Shown, not judged here: a lagging replica turns the sqlite service unhealthy,
        # while the app keeps serving from the local database.
        database = Path(engine.url.database or "")
        body["replica"] = replica.details(replica_settings, database, time.time())
    return body


@view_config(route_name="version", request_method="GET", renderer="json")
def version(request: Request) -> dict[str, Any]:
    settings = request.registry.settings["webapp.settings"]
    try:
        with reader(request.registry.settings["webapp.engine"]).connect() as conn:
            revision = schema.current(conn) or "none"
            conn.rollback()
    except SQLAlchemyError:
        # /version must answer even when the database cannot: say so instead of failing.
        revision = "unknown"
    return {
        "version": settings.version,
        "revision": settings.revision,
        "built_at": settings.built_at,
        "schema_revision": revision,
        "app_env": settings.app_env,
        "sqlite_version": sqlite_floor.library_version(),
        "python_version": sqlite_floor.python_version(),
    }


@cache
def _spec() -> bytes:
    text = resources.files("webapp").joinpath("openapi.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":")).encode()


@view_config(route_name="openapi", request_method="GET")
def openapi(_request: Request) -> Response:
    return Response(body=_spec(), content_type="application/json", charset=None)
