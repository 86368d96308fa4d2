"""The deploy's readiness check (ansible/roles/webapp/files/app_ready.py), run as the
deploy runs it on a host (`python3 -c "$(cat app_ready.py)" PORT TRIES DELAY`), against
a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.repo import ROOT

SCRIPT = (ROOT / "ansible" / "roles" / "webapp" / "files" / "app_ready.py").read_text()
VERSION = {"version": "0.1.0", "revision": "abc1234", "schema_revision": "0002"}


class App:
    """Answers /readyz with 503 for the first `not_ready` asks, then 200; /version JSON."""

    def __init__(self, not_ready: int) -> None:
        self.not_ready = not_ready
        self.asked: list[str] = []


@pytest.fixture
def serve() -> Iterator[tuple[App, int]]:
    app = App(not_ready=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            app.asked.append(self.path)
            if self.path == "/readyz":
                ready = app.asked.count("/readyz") > app.not_ready
                status, body = (200, b"ok") if ready else (503, b"run db upgrade")
            else:
                status, body = 200, json.dumps(VERSION).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def check(port: int, tries: int) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", SCRIPT, str(port), str(tries), "0.01"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_it_waits_for_readiness_then_prints_the_version(serve: tuple[App, int]) -> None:
    app, port = serve
    app.not_ready = 2
    result = check(port, tries=5)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == VERSION
    assert app.asked == ["/readyz", "/readyz", "/readyz", "/version"]


def test_an_app_never_ready_fails_with_its_last_answer(serve: tuple[App, int]) -> None:
    app, port = serve
    app.not_ready = 10
    result = check(port, tries=3)
    assert result.returncode == 1
    assert result.stdout == ""
    assert app.asked == ["/readyz"] * 3
    assert result.stderr.strip() == (
        f"http://127.0.0.1:{port}/readyz did not answer 200 after 3 tries: 503 run db upgrade"
    )


def test_nothing_listening_is_named_as_no_answer() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        port = server.server_address[1]
    result = check(port, tries=2)
    assert result.returncode == 1
    assert "did not answer 200 after 2 tries: no answer" in result.stderr
    assert "Connection refused" in result.stderr
