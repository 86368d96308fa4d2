"""Health, readiness, version, the OpenAPI document, and headers every response has."""

from __future__ import annotations

import json
import platform
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import webtest

from webapp.config import make_app
from webapp.db import schema
from webapp.db.engine import make_engine
from webapp.http.tweens import SECURITY_HEADERS
from webapp.routes import ROUTES

from .conftest import migrated_engine, settings_for


def test_healthz_touches_no_database(tmp_path):
    # The file does not exist: liveness must still answer.
    app = webtest.TestApp(make_app(settings_for(tmp_path / "missing" / "app.db")))
    assert app.get("/healthz", status=200).json == {"status": "ok"}


def test_readyz_is_200_at_head(app):
    assert app.get("/readyz", status=200).json == {
        "status": "ok",
        "schema_revision": schema.head(),
        "slot": "app",
    }


def test_readyz_is_503_when_the_file_is_missing(tmp_path):
    app = webtest.TestApp(make_app(settings_for(tmp_path / "app.db")))
    response = app.get("/readyz", status=503)
    assert response.content_type == "application/problem+json"
    assert "does not exist" in response.json["detail"]
    assert response.headers["Retry-After"]
    assert not (tmp_path / "app.db").exists()


def test_readyz_is_503_while_the_slot_drains_and_200_once_it_is_back(
    db_path, engine, tmp_path, monkeypatch
):
    # The release drains a slot by creating its marker beside the slot's socket.
    monkeypatch.setenv("WEBAPP_SOCKET_DIR", str(tmp_path))
    monkeypatch.setenv("WEBAPP_SLOT", "app_next")
    app = webtest.TestApp(make_app(settings_for(db_path), engine=engine))
    assert app.get("/readyz", status=200)
    (tmp_path / "app.draining").touch()  # the other slot's marker: not this one's
    assert app.get("/readyz", status=200)
    (tmp_path / "app_next.draining").touch()
    response = app.get("/readyz", status=503)
    assert "draining" in response.json["detail"]
    assert response.headers["Retry-After"]
    # Liveness is not readiness: the draining slot is alive and finishing its requests.
    assert app.get("/healthz", status=200)
    (tmp_path / "app_next.draining").unlink()
    assert app.get("/readyz", status=200)


def test_readyz_is_503_when_a_migration_renamed_a_column_this_release_reads(tmp_path):
    # At the head revision, but contracted too early: the column the code maps is gone.
    path = tmp_path / "app.db"
    engine = migrated_engine(path)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE notes RENAME COLUMN body TO body_gone")
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    detail = app.get("/readyz", status=503).json["detail"]
    assert "lacks notes.body" in detail and "expand, then contract" in detail


def _migrated_by_a_later_release(path: Path, *, contract: bool) -> Any:
    # As a later release's migration leaves it: a revision this code does not know, and
    # a column added (expand) or, with contract, one this code reads renamed too.
    engine = migrated_engine(path)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE notes ADD COLUMN colour TEXT")
        if contract:
            conn.exec_driver_sql("ALTER TABLE notes RENAME COLUMN title TO heading")
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'later0099'")
    return engine


def test_readyz_is_200_on_a_schema_a_later_release_expanded(tmp_path):
    path = tmp_path / "app.db"
    engine = _migrated_by_a_later_release(path, contract=False)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    assert app.get("/readyz", status=200).json["status"] == "ok"
    note = app.post_json("/api/notes", {"title": "t", "body": "b"}, status=201).json
    assert app.get(f"/api/notes/{note['id']}", status=200).json["title"] == "t"


def test_readyz_is_503_on_a_schema_a_later_release_contracted(tmp_path):
    path = tmp_path / "app.db"
    engine = _migrated_by_a_later_release(path, contract=True)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    assert "lacks notes.title" in app.get("/readyz", status=503).json["detail"]


def test_readyz_is_503_when_not_migrated(tmp_path):
    path = tmp_path / "app.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x)")
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    detail = app.get("/readyz", status=503).json["detail"]
    assert "revision none" in detail and schema.head() in detail


def test_readyz_is_503_when_the_database_is_read_only(db_path, tmp_path):
    # query_only makes SQLite refuse writes as it does for a read-only file (root,
    # which runs the tests, ignores file modes).
    engine = make_engine(f"sqlite:///{db_path}")

    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = 1")

    app = webtest.TestApp(make_app(settings_for(db_path), engine=engine))
    response = app.get("/readyz", status=503)
    assert "not usable" in response.json["detail"]
    engine.dispose()


def test_version_reports_build_values_and_schema(db_path, engine):
    settings = settings_for(
        db_path, version="1.2.3", revision="abc123", built_at="2026-01-01T00:00:00Z"
    )
    app = webtest.TestApp(make_app(settings, engine=engine))
    assert app.get("/version").json == {
        "version": "1.2.3",
        "revision": "abc123",
        "built_at": "2026-01-01T00:00:00Z",
        "schema_revision": schema.head(),
        "app_env": "dev",
        "sqlite_version": sqlite3.sqlite_version,
        "python_version": platform.python_version(),
    }


def test_version_reads_unknown_without_build_values(app):
    body = app.get("/version").json
    assert body["version"] == body["revision"] == body["built_at"] == "unknown"


def test_version_answers_when_the_database_cannot(tmp_path):
    app = webtest.TestApp(make_app(settings_for(tmp_path / "no" / "such" / "dir.db")))
    assert app.get("/version").json["schema_revision"] == "unknown"


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        resources.files("webapp").joinpath("openapi.json").read_text()
    )
    return spec


def test_openapi_is_served_and_is_3_1(app):
    served = app.get("/openapi.json", status=200)
    assert served.content_type == "application/json"
    assert served.json == _spec()
    assert served.json["openapi"].startswith("3.1")


def test_openapi_documents_exactly_the_routes():
    documented = {re.sub(r"\{[^}]+\}", "{id}", path) for path in _spec()["paths"]}
    served = {pattern for pattern, _methods in ROUTES.values()}
    assert documented == served


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        (path, method)
        for path, item in json.loads(
            resources.files("webapp").joinpath("openapi.json").read_text()
        )["paths"].items()
        for method in item
        if method in ("get", "post", "put", "delete")
    ],
)
def test_every_documented_operation_answers_with_a_documented_status(
    app, make_note, path, operation
):
    headers = {}
    url = path
    if "{id}" in path:
        # Only note routes write first: /readyz must not find the test's own write lock.
        note = make_note(title="walk")
        url = path.replace("{id}", str(note.json["id"]))
        headers = {"If-Match": note.headers["ETag"]}
    kwargs = {"headers": headers, "status": "*"}
    if path == "/" and operation == "post":
        found = re.search(r'name="csrf_token" value="([^"]+)"', app.get("/").text)
        assert found is not None, "the page has no CSRF token"
        token = found.group(1)
        response = app.post("/", {"csrf_token": token, "title": "walked"}, status="*")
    elif operation in ("post", "put"):
        response = getattr(app, f"{operation}_json")(url, {"title": "walked"}, **kwargs)
    else:
        response = getattr(app, operation)(url, **kwargs)
    documented = _spec()["paths"][path][operation]["responses"]
    assert str(response.status_int) in documented
    assert response.status_int < 400, response.text


def test_openapi_limits_match_the_validator():
    from webapp.notes import search, store, validation

    schemas = _spec()["components"]["schemas"]
    props = schemas["NoteInput"]["properties"]
    assert props["title"]["maxLength"] == validation.TITLE_MAX
    assert props["body"]["maxLength"] == validation.BODY_MAX
    assert props["tags"]["maxItems"] == validation.TAGS_MAX
    assert props["tags"]["items"]["maxLength"] == validation.TAG_MAX
    params = {p["name"]: p for p in _spec()["paths"]["/api/notes"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == store.LIMIT_MAX
    assert params["q"]["schema"]["maxLength"] == search.Q_MAX


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/notes", "/nope", "/openapi.json"])
def test_every_response_has_security_headers_and_request_id(app, path):
    response = app.get(path, status="*")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_sane_incoming_request_id_is_echoed(app):
    response = app.get("/healthz", headers={"X-Request-ID": "edge-42.a_b:c"})
    assert response.headers["X-Request-ID"] == "edge-42.a_b:c"


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "new\\nline", "<script>", "é"])
def test_insane_incoming_request_id_is_replaced(app, bad):
    response = app.get("/healthz", headers={"X-Request-ID": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_static_stylesheet_is_served(app):
    assert "body" in app.get("/static/style.css", status=200).text


def test_package_ships_its_data_files():
    root = Path(str(resources.files("webapp")))
    for name in ("openapi.json", "templates/home.html", "static/style.css"):
        assert (root / name).is_file(), name
