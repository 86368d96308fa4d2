"""Pure helpers: search query quoting, cursors, JSON parsing, problem titles."""

from __future__ import annotations

import re
import sqlite3

import pytest

from webapp.http import problems
from webapp.http.problems import Problem
from webapp.notes import cursor, search
from webapp.notes.validation import parse_json, validate


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", None),
        ("   ", None),
        ("\x00", None),
        ("hello", '"hello"'),
        ("a b", '"a" "b"'),
        ('say "hi"', '"say" """hi"""'),
        ("NEAR(a b)", '"NEAR(a" "b)"'),
    ],
)
def test_fts_query_quotes_every_token(q, expected):
    assert search.fts_query(q) == expected


def test_fts_query_caps_the_number_of_tokens():
    query = search.fts_query("w " * 1000)
    assert query is not None and query.count('"w"') == search.TOKENS_MAX


@pytest.mark.parametrize(
    "q", ['"', "*", "NEAR(", "a OR", "-x", "col:x", "^", "(", ")", "AND", "'", "\\", "+"]
)
def test_quoted_queries_are_valid_fts5(q):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    conn.execute("INSERT INTO t VALUES ('some text NEAR OR AND')")
    conn.execute("SELECT * FROM t WHERE t MATCH ?", (search.fts_query(q),)).fetchall()


def test_cursor_round_trips_and_has_one_shape():
    for value in (1, 42, 2**63 - 1):
        encoded = cursor.encode(value)
        assert re.fullmatch(cursor.PATTERN, encoded)
        assert cursor.decode(encoded) == value


def test_every_cursor_of_the_documented_shape_is_a_position():
    assert cursor.decode("AAAAAAAAAAA") == 0
    assert cursor.decode("___________") == cursor.ID_MAX + 1
    assert cursor.decode("zzzzzzzzzzz") == cursor.ID_MAX + 1


@pytest.mark.parametrize(
    "value", ["", "!!!", "aWQ6", "AAAAAAAAAAAA", "AAAAAAAAAA=", "AAAAAAAAAA+", "é" * 11]
)
def test_foreign_cursors_are_400(value):
    with pytest.raises(Problem) as caught:
        cursor.decode(value)
    assert caught.value.status == 400


def test_parse_json_accepts_plain_json():
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}


def test_validate_defaults_body_and_tags():
    note = validate({"title": "t"})
    assert (note.title, note.body, note.tags) == ("t", "", [])


def test_validate_lists_every_bad_field_at_once():
    with pytest.raises(Problem) as caught:
        validate({"title": "", "body": 5, "tags": ["", "x" * 51], "nope": 1})
    fields = [error["field"] for error in caught.value.errors or []]
    assert fields == ["nope", "title", "body", "tags[0]", "tags[1]"]


def test_problem_titles_cover_507_and_unknown_codes():
    assert problems.title(507) == "Insufficient Storage"
    assert problems.title(404) == "Not Found"
    assert problems.title(599) == "Error"


def test_repeated_tags_are_reported_beside_other_errors():
    with pytest.raises(Problem) as caught:
        validate({"title": "", "tags": ["a", "a"]})
    assert [error["field"] for error in caught.value.errors or []] == ["title", "tags"]


def test_other_http_exceptions_become_problems_and_redirects_pass():
    from pyramid.httpexceptions import HTTPFound, HTTPGone
    from pyramid.testing import DummyRequest

    from webapp.http.errors import http_exception

    request = DummyRequest(path="/somewhere")
    response = http_exception(HTTPGone(detail="gone for good"), request)
    assert response.status_int == 410
    assert response.content_type == problems.PROBLEM_JSON
    assert response.json_body["detail"] == "gone for good"
    redirect = HTTPFound(location="/elsewhere")
    assert http_exception(redirect, request) is redirect
