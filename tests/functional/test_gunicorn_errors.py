"""Requests Gunicorn refuses before the app sees them still get problem+json."""

from __future__ import annotations

import json
import socket

import pytest

from webapp.ops.gunicorn_errors import DETAIL_MAX, problem_bytes

from .test_gunicorn import server  # noqa: F401 - the real Gunicorn fixture


def _exchange(base: str, raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    host, port = base.removeprefix("http://").split(":")
    reply = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw)
        for _ in range(100):  # bounded: the answer is small and the server closes
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status_line.encode(), headers, body


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nIf-Match: " + b"v" * 10_000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ],
)
def test_protocol_refusals_are_problem_json(server, raw, status):  # noqa: F811
    base, _proc = server
    status_line, headers, body = _exchange(base, raw)
    assert status_line.startswith(b"HTTP/1.1 %d " % status)
    assert headers["Content-Type"] == "application/problem+json"
    assert int(headers["Content-Length"]) == len(body)
    problem = json.loads(body)
    assert problem["status"] == status and problem["detail"]


def test_a_long_message_is_cut_in_the_detail():
    raw = problem_bytes(400, "Bad Request", "x" * 5000)
    problem = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert len(problem["detail"]) == DETAIL_MAX + 1
    assert problem["title"] == "Bad Request" and problem["request_id"] is None
