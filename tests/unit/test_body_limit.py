"""The body-size middleware, driven with WSGI environs as Gunicorn builds them."""

from __future__ import annotations

import io

from webapp.http.body_limit import TOO_LARGE, UNREADABLE, BodyLimit


def _run(environ):
    seen = {}

    def app(env, start_response):
        seen.update(env)
        seen["body"] = env["wsgi.input"].read()
        return [b""]

    BodyLimit(app, limit=10)(environ, lambda *a: None)
    return seen


class Exploding(io.RawIOBase):
    def read(self, size=-1):
        raise OSError("client went away mid-chunk")


def test_declared_length_over_the_limit_is_flagged_and_never_read():
    stream = io.BytesIO(b"x" * 100)
    seen = _run({"CONTENT_LENGTH": "100", "wsgi.input": stream})
    assert seen[TOO_LARGE] and seen["body"] == b""
    assert stream.tell() == 0


def test_declared_length_within_the_limit_passes_untouched():
    seen = _run({"CONTENT_LENGTH": "5", "wsgi.input": io.BytesIO(b"hello")})
    assert TOO_LARGE not in seen and seen["body"] == b"hello"


def test_non_numeric_length_is_flagged_unreadable():
    assert _run({"CONTENT_LENGTH": "5x", "wsgi.input": io.BytesIO(b"hello")})[UNREADABLE]


def test_chunked_body_is_read_only_up_to_the_limit_plus_one():
    stream = io.BytesIO(b"y" * 1000)
    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream}
    seen = _run(environ)
    assert seen[TOO_LARGE] and stream.tell() == 11


def test_small_chunked_body_becomes_a_sized_body():
    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b"small")}
    seen = _run(environ)
    assert seen["body"] == b"small" and seen["CONTENT_LENGTH"] == "5"
    assert "HTTP_TRANSFER_ENCODING" not in seen


def test_broken_chunked_stream_is_flagged_unreadable():
    seen = _run({"wsgi.input_terminated": True, "wsgi.input": Exploding()})
    assert seen[UNREADABLE]
