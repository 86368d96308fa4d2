"""The HTML page: lists and searches notes; its form creates one, guarded by CSRF."""

from __future__ import annotations

import re


def _token(page) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def test_page_lists_newest_notes_escaped(app, make_note):
    make_note(title="<script>alert(1)</script>", body="first & last", tags=["t1"])
    page = app.get("/", status=200)
    assert page.content_type == "text/html"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert "first &amp; last" in page.text


def test_page_sends_csp_without_inline_and_frame_protection(app):
    headers = app.get("/").headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def test_page_searches(app, make_note):
    make_note(title="gardening tips")
    make_note(title="cooking tips")
    page = app.get("/", {"q": "gardening"})
    assert "gardening tips" in page.text and "cooking tips" not in page.text


def test_page_paginates_with_an_older_link(app, make_note):
    for i in range(21):
        make_note(title=f"page note {i:02d}")
    page = app.get("/")
    assert "page note 20" in page.text and "page note 00" not in page.text
    older = page.click(description="Older notes")
    assert "page note 00" in older.text


def test_mangled_cursor_shows_the_first_page(app, make_note):
    make_note(title="still here")
    assert "still here" in app.get("/", {"cursor": "garbage"}, status=200).text


def test_form_creates_a_note_and_redirects(app):
    page = app.get("/")
    form = page.forms[1]
    form["title"] = "From the form"
    form["body"] = "typed by hand"
    form["tags"] = "one, two,,"
    result = form.submit(status=303)
    assert result.headers["Location"].endswith("/")
    assert "From the form" in result.follow().text
    note = app.get("/api/notes").json["items"][0]
    assert note["title"] == "From the form" and note["tags"] == ["one", "two"]


def test_form_with_invalid_input_rerenders_with_errors(app):
    form = app.get("/").forms[1]
    form["title"] = "   "
    form["body"] = "kept text"
    page = form.submit(status=422)
    assert "title" in page.text and "kept text" in page.text
    assert app.get("/api/notes").json["items"] == []


def test_forged_post_without_token_is_rejected(app):
    app.get("/")  # even with a session cookie, the token must come with the form
    response = app.post("/", {"title": "forged"}, status=403)
    assert response.content_type == "application/problem+json"
    assert "CSRF" in response.json["detail"]
    assert app.get("/api/notes").json["items"] == []


def test_post_with_a_wrong_token_is_rejected(app):
    page = app.get("/")
    token = _token(page)
    app.post("/", {"title": "forged", "csrf_token": token[::-1]}, status=403)
    assert app.get("/api/notes").json["items"] == []


def test_token_from_another_session_is_rejected(wsgi_app, app):
    import webtest

    other = webtest.TestApp(wsgi_app)
    stolen = _token(other.get("/"))
    app.get("/")
    app.post("/", {"title": "forged", "csrf_token": stolen}, status=403)


def test_session_cookie_is_http_only_and_same_site(app):
    response = app.get("/")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_malformed_multipart_form_is_400_not_500(app):
    response = app.post(
        "/",
        b"csrf_token=&title=x",
        headers={"Content-Type": "multipart/form-data"},
        status=400,
    )
    assert response.content_type == "application/problem+json"
