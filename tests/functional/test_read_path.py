"""Reads run outside the transaction manager and the ORM: same answers, nothing held."""

from __future__ import annotations

import webtest
from sqlalchemy.pool import QueuePool

from webapp.config import make_app

from .conftest import migrated_engine, settings_for


def test_reads_answer_what_writes_stored_and_return_their_connections(tmp_path):
    path = tmp_path / "app.db"
    engine = migrated_engine(path)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    created = app.post_json(
        "/api/notes", {"title": "kept", "body": "alpha", "tags": ["x", "y"]}, status=201
    )
    updated = app.put_json(
        f"/api/notes/{created.json['id']}",
        {"title": "kept", "body": "alpha bravo", "tags": ["y"]},
        headers={"If-Match": created.headers["ETag"]},
        status=200,
    )
    shown = app.get(f"/api/notes/{created.json['id']}", status=200)
    assert shown.json == updated.json
    assert shown.headers["ETag"] == updated.headers["ETag"] == '"v2"'
    listed = app.get("/api/notes", params={"q": "bravo"}, status=200)
    assert listed.json["items"] == [updated.json]
    assert "kept" in app.get("/", status=200).text
    app.get("/api/notes/999", status=404)
    # Every read gave its connection back, the failed one included.
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.checkedout() == 0
    # A read never took the writers' turn, so a writer gets it at once.
    app.post_json("/api/notes", {"title": "after"}, status=201)
    engine.dispose()
