"""The JSON API, one behaviour per test, through WebTest against a migrated file."""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM = "application/problem+json"


def assert_problem(response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_int == status
    assert response.content_type == PROBLEM
    body: dict[str, Any] = response.json
    assert body["status"] == status
    assert body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    if field is not None:
        assert field in [error["field"] for error in body["errors"]]
    return body


def test_create_returns_201_with_location_and_etag(app):
    response = app.post_json(
        "/api/notes", {"title": "Hello", "body": "World", "tags": ["x", "y"]}, status=201
    )
    note = response.json
    assert response.content_type == "application/json"
    assert response.headers["Location"].endswith(f"/api/notes/{note['id']}")
    assert response.headers["ETag"] == '"v1"'
    assert note["title"] == "Hello" and note["body"] == "World" and note["tags"] == ["x", "y"]
    assert note["version"] == 1
    assert note["created_at"].endswith("Z") and note["created_at"] == note["updated_at"]


def test_get_returns_the_note_with_etag(app, make_note):
    created = make_note(title="Readable").json
    response = app.get(f"/api/notes/{created['id']}", status=200)
    assert response.json == created
    assert response.headers["ETag"] == '"v1"'


def test_get_missing_note_is_404(app):
    assert_problem(app.get("/api/notes/999999", status=404), 404)


@pytest.mark.parametrize(
    "note_id",
    ["abc", "-1", "0", "1.5", "99999999999999999999999", "9223372036854775808", "%D9%A1"],
)
def test_ids_that_cannot_exist_are_404(app, note_id):
    assert_problem(app.get(f"/api/notes/{note_id}", status=404), 404)


def test_list_is_newest_first_with_keyset_pages(app, make_note):
    ids = [make_note(title=f"n{i}").json["id"] for i in range(5)]
    first = app.get("/api/notes?limit=2", status=200).json
    assert [n["id"] for n in first["items"]] == ids[::-1][:2]
    second = app.get(f"/api/notes?limit=2&cursor={first['next_cursor']}").json
    assert [n["id"] for n in second["items"]] == ids[::-1][2:4]
    third = app.get(f"/api/notes?limit=2&cursor={second['next_cursor']}").json
    assert [n["id"] for n in third["items"]][:1] == ids[:1]


def test_list_default_limit_is_20_and_last_page_has_no_cursor(app, make_note):
    for i in range(21):
        make_note(title=f"bulk {i}")
    page = app.get("/api/notes").json
    assert len(page["items"]) == 20
    assert page["next_cursor"] is not None
    rest = app.get(f"/api/notes?limit=100&cursor={page['next_cursor']}").json
    assert rest["next_cursor"] is None


def test_search_matches_title_and_body_words(app, make_note):
    make_note(title="Shopping list", body="apples and pears")
    make_note(title="Apples of my eye", body="poetry")
    make_note(title="Unrelated", body="nothing here")
    found = app.get("/api/notes", {"q": "apples"}).json["items"]
    assert sorted(n["title"] for n in found) == ["Apples of my eye", "Shopping list"]
    both = app.get("/api/notes", {"q": "apples pears"}).json["items"]
    assert [n["title"] for n in both] == ["Shopping list"]


def test_search_follows_updates_and_deletes(app, make_note):
    created = make_note(title="alpha", body="")
    note_id = created.json["id"]
    app.put_json(
        f"/api/notes/{note_id}", {"title": "beta"}, headers={"If-Match": created.headers["ETag"]}
    )
    assert app.get("/api/notes", {"q": "alpha"}).json["items"] == []
    assert [n["id"] for n in app.get("/api/notes", {"q": "beta"}).json["items"]] == [note_id]
    app.delete(f"/api/notes/{note_id}", status=204)
    assert app.get("/api/notes", {"q": "beta"}).json["items"] == []


@pytest.mark.parametrize(
    "q",
    [
        '"',
        '""',
        "*",
        "NEAR(",
        "NEAR(a b",
        "a OR",
        "OR",
        "-",
        "NOT",
        "title:x",
        "^x",
        "a AND (b",
        "'; DROP TABLE notes; --",
        "1' OR '1'='1",
        "x\x00y",
        "\\",
        "{title body}: x",
        "   ",
        "ééé ☃ \U0001d518",
    ],
)
def test_search_treats_query_syntax_as_plain_words(app, make_note, q):
    make_note(title="NEAR OR NOT", body="'; DROP TABLE notes; --")
    response = app.get("/api/notes", {"q": q}, status=200)
    assert isinstance(response.json["items"], list)
    assert app.get("/api/notes").json["items"]  # the table is still there


def test_sql_in_search_finds_the_literal_text(app, make_note):
    make_note(title="injection", body="robert'); DROP TABLE notes;--")
    found = app.get("/api/notes", {"q": "DROP TABLE"}).json["items"]
    assert [n["title"] for n in found] == ["injection"]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=abc",
        "limit=-1",
        "limit=1e3",
        "cursor=nonsense",
        "cursor=aWQ6MA",
    ],
)
def test_bad_query_parameters_are_400(app, query):
    assert_problem(app.get(f"/api/notes?{query}", status=400), 400)


def test_overlong_search_is_400(app):
    assert_problem(app.get("/api/notes", {"q": "x" * 501}, status=400), 400)


def test_put_replaces_with_if_match_and_bumps_etag(app, make_note):
    created = make_note(title="v1", tags=["a"])
    url = f"/api/notes/{created.json['id']}"
    updated = app.put_json(
        url, {"title": "v2", "body": "new"}, headers={"If-Match": created.headers["ETag"]}
    )
    assert updated.status_int == 200
    assert updated.headers["ETag"] == '"v2"'
    assert updated.json["version"] == 2 and updated.json["tags"] == []
    assert updated.json["updated_at"] >= updated.json["created_at"]
    assert app.get(url).json == updated.json


def test_put_with_stale_etag_is_412_and_changes_nothing(app, make_note):
    created = make_note(title="original")
    url = f"/api/notes/{created.json['id']}"
    app.put_json(url, {"title": "first"}, headers={"If-Match": created.headers["ETag"]})
    stale = app.put_json(
        url, {"title": "lost"}, headers={"If-Match": created.headers["ETag"]}, status=412
    )
    assert_problem(stale, 412)
    assert stale.headers["ETag"] == '"v2"'
    assert app.get(url).json["title"] == "first"


def test_put_without_if_match_is_428(app, make_note):
    url = f"/api/notes/{make_note().json['id']}"
    assert_problem(app.put_json(url, {"title": "x"}, status=428), 428)


def test_put_if_match_star_matches_any_version(app, make_note):
    url = f"/api/notes/{make_note().json['id']}"
    assert app.put_json(url, {"title": "x"}, headers={"If-Match": "*"}).json["version"] == 2


def test_put_missing_note_is_404(app):
    response = app.put_json(
        "/api/notes/424242", {"title": "x"}, headers={"If-Match": "*"}, status=404
    )
    assert_problem(response, 404)


def test_delete_is_204_then_404(app, make_note):
    url = f"/api/notes/{make_note().json['id']}"
    response = app.delete(url, status=204)
    assert response.body == b""
    assert_problem(app.get(url, status=404), 404)
    assert_problem(app.delete(url, status=404), 404)


def test_delete_honours_if_match(app, make_note):
    created = make_note()
    url = f"/api/notes/{created.json['id']}"
    assert_problem(app.delete(url, headers={"If-Match": '"v9"'}, status=412), 412)
    app.delete(url, headers={"If-Match": created.headers["ETag"]}, status=204)


def test_wrong_method_is_405_with_allow(app, make_note):
    response = app.patch("/api/notes", status=405)
    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD, POST"
    url = f"/api/notes/{make_note().json['id']}"
    assert app.post_json(url, {"title": "x"}, status=405).headers["Allow"] == (
        "GET, HEAD, PUT, DELETE"
    )
    assert_problem(app.delete("/healthz", status=405), 405)


def test_unknown_path_is_404(app):
    assert_problem(app.get("/no/such/thing", status=404), 404)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(app, content_type):
    response = app.post(
        "/api/notes", b'{"title": "x"}', headers={"Content-Type": content_type}, status=415
    )
    assert_problem(response, 415)


def test_json_with_charset_parameter_is_accepted(app):
    app.post(
        "/api/notes",
        b'{"title": "x"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
        status=201,
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"{'title': 'x'}",
        b'{"title": "x",}',
        b"\xff\xfe{}",
        b'{"title": "\xc3\x28"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"title": NaN}',
        b'{"title": Infinity}',
        b'{"title": "x", "body": ' + b"9" * 5000 + b"}",
    ],
    ids=[
        "empty",
        "truncated",
        "single-quotes",
        "trailing-comma",
        "bom-garbage",
        "invalid-utf8",
        "deep-arrays",
        "deep-objects",
        "nan",
        "infinity",
        "5000-digit-integer",
    ],
)
def test_malformed_json_is_400(app, raw):
    response = app.post("/api/notes", raw, content_type="application/json", status=400)
    assert_problem(response, 400)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 5}, "title"),
        ({"title": None}, "title"),
        ({"title": ["x"]}, "title"),
        ({"title": "nul\x00byte"}, "title"),
        ({"title": "\ud800"}, "title"),
        ({"title": "x", "body": "b" * 102_401}, "body"),
        ({"title": "x", "body": 1e308}, "body"),
        ({"title": "x", "body": 10**100}, "body"),
        ({"title": "x", "tags": "a,b"}, "tags"),
        ({"title": "x", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "x", "tags": [f"t{i}" for i in range(1000)]}, "tags"),
        ({"title": "x", "tags": ["a", "a"]}, "tags"),
        ({"title": "x", "tags": [""]}, "tags[0]"),
        ({"title": "x", "tags": ["ok", "t" * 51]}, "tags[1]"),
        ({"title": "x", "tags": [1]}, "tags[0]"),
        ({"title": "x", "tags": [{"a": 1}]}, "tags[0]"),
        ({"title": "x", "id": 5}, "id"),
        ({"title": "x", "extra": True}, "extra"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(app, payload, field):
    response = app.post_json("/api/notes", payload, status=422)
    assert_problem(response, 422, field=field)


@pytest.mark.parametrize("payload", [[], "title", 5, None, True])
def test_non_object_bodies_are_422(app, payload):
    assert_problem(app.post_json("/api/notes", payload, status=422), 422, field="(body)")


def test_limits_at_the_edge_are_accepted(app):
    payload = {"title": "t" * 200, "body": "b" * 102_400, "tags": [f"{i:050d}" for i in range(20)]}
    note = app.post_json("/api/notes", payload, status=201).json
    assert len(note["title"]) == 200 and len(note["body"]) == 102_400 and len(note["tags"]) == 20


def test_nul_in_body_is_refused_and_unicode_is_kept(app):
    assert_problem(app.post_json("/api/notes", {"title": "x", "body": "a\x00b"}, status=422), 422)
    title = "☃ \U0001d518 é"
    note = app.post_json("/api/notes", {"title": title, "body": "日本語\n\t"}, status=201).json
    assert note["title"] == title and note["body"] == "日本語\n\t"


def test_body_over_one_mebibyte_is_413(app):
    response = app.post(
        "/api/notes", b" " * (1024 * 1024 + 1), content_type="application/json", status=413
    )
    assert_problem(response, 413)


def test_ten_megabyte_body_is_413(app):
    raw = b'{"title": "x", "body": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    assert_problem(app.post("/api/notes", raw, content_type="application/json", status=413), 413)


def test_put_validates_like_post(app, make_note):
    created = make_note()
    url = f"/api/notes/{created.json['id']}"
    headers = {"If-Match": created.headers["ETag"]}
    assert_problem(app.put_json(url, {"title": ""}, headers=headers, status=422), 422, "title")
    assert_problem(
        app.put(url, b"{", headers={**headers, "Content-Type": "application/json"}, status=400),
        400,
    )
    assert_problem(
        app.put(url, b"x", headers={**headers, "Content-Type": "text/plain"}, status=415), 415
    )


def test_head_answers_like_get_without_body(app, make_note):
    url = f"/api/notes/{make_note().json['id']}"
    response = app.head(url, status=200)
    assert response.body == b""
    assert response.headers["ETag"] == '"v1"'


@pytest.mark.parametrize("path", ["/api/notes/%FF", "/%C3%28"])
def test_paths_that_are_not_utf8_are_400(app, path):
    assert_problem(app.get(path, status=400), 400)


def test_overlong_if_match_is_400(app, make_note):
    url = f"/api/notes/{make_note().json['id']}"
    long_tag = '"' + "0" * 250 + '"'
    assert_problem(app.delete(url, headers={"If-Match": long_tag}, status=400), 400)
    response = app.put_json(url, {"title": "x"}, headers={"If-Match": long_tag}, status=400)
    assert_problem(response, 400)


def test_cursor_beyond_every_id_starts_at_the_newest(app, make_note):
    created = make_note(title="newest").json
    page = app.get("/api/notes", {"cursor": "___________"}, status=200).json
    assert page["items"][0]["id"] == created["id"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/notes?q=%FF",
        "/api/notes?limit=%FF",
        "/api/notes?cursor=%C3%28",
        "/?q=%FF",
        "/api/notes?%FF=1",
    ],
)
def test_query_strings_that_are_not_utf8_are_400(app, url):
    assert_problem(app.get(url, status=400), 400)


def test_thousands_of_unknown_fields_get_a_bounded_answer(app):
    payload = {"title": "x", **{f"k{i}": i for i in range(20_000)}}
    response = app.post_json("/api/notes", payload, status=422)
    body = assert_problem(response, 422)
    assert len(body["errors"]) == 50
    assert "and 19990 more" in body["detail"]
    assert len(response.body) < 10_000
