"""Real Gunicorn with gunicorn.conf.py on a free loopback port, against a migrated file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.ports import free_port
from tests.sqlite_allowance import ALLOWANCE

from .conftest import migrated_engine

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """A Gunicorn process whose logs go to files: a pipe nobody drains would fill up and
    block the workers mid-request."""

    def __init__(self, env: dict[str, str], log_dir: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.out_path = log_dir / "stdout.log"
        self.err_path = log_dir / "stderr.log"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.proc = _gunicorn(env, *args, stdout=out, stderr=err)

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return self.out_path.read_text(), self.err_path.read_text()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


def _gunicorn(env: dict[str, str], *args: str, **streams: Any) -> subprocess.Popen[str]:
    streams = streams or {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", *args]
    return subprocess.Popen(
        [*command, "webapp.wsgi:application"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            **ALLOWANCE,
            **env,
        },
        text=True,
        **streams,
    )


def _request(base: str, path: str, method: str = "GET", body: bytes | None = None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _start(tmp_path: Path, *args: str, **env: str) -> tuple[str, Server]:
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    port = free_port()
    proc = Server(
        {
            "DATABASE_URL": f"sqlite:///{path}",
            "APP_ENV": "dev",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "2",
            "WEBAPP_METRICS_PORT": str(free_port()),
            **env,
        },
        tmp_path,
        args,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.proc.poll() is None:
        try:
            if _request(base, "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    return base, proc


@pytest.fixture
def server(tmp_path):
    base, proc = _start(tmp_path)
    try:
        yield base, proc
    finally:
        proc.stop()


def test_prod_secret_never_reaches_the_logs_even_at_debug(tmp_path):
    marker = "Zq9vX7-secret-marker-" + "k" * 24
    key_file = tmp_path / "secret_key"
    key_file.write_text(marker + "\n")
    base, proc = _start(tmp_path, APP_ENV="prod", SECRET_KEY_FILE=str(key_file), LOG_LEVEL="DEBUG")
    try:
        assert _request(base, "/")[0] == 200
        form = b"title=forged"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        assert _request(base, "/", "POST", form, headers)[0] == 403
        status, _headers, body = _request(base, "/version")
        assert status == 200 and json.loads(body)["app_env"] == "prod"
    finally:
        out, err = proc.stop()
    assert proc.returncode == 0
    assert '"level": "DEBUG"' in err  # debug logging really was on
    assert marker not in out and marker not in err


def test_gunicorn_serves_every_route_and_logs_json_access_lines(server):
    base, proc = server
    json_headers = {"Content-Type": "application/json"}
    assert _request(base, "/healthz")[0] == 200
    assert _request(base, "/readyz")[0] == 200
    status, _h, body = _request(base, "/version")
    assert status == 200 and json.loads(body)["schema_revision"] != "unknown"
    assert _request(base, "/openapi.json")[0] == 200
    assert _request(base, "/")[0] == 200
    status, headers, body = _request(
        base, "/api/notes", "POST", b'{"title": "via gunicorn"}', json_headers
    )
    assert status == 201
    note_url = "/api/notes/" + str(json.loads(body)["id"])
    assert _request(base, note_url)[0] == 200
    assert _request(base, note_url, "PUT", b'{"title": "x"}', json_headers)[0] == 428
    assert (
        _request(base, note_url, "PUT", b'{"title": "x"}', {**json_headers, "If-Match": '"v9"'})[0]
        == 412
    )
    assert (
        _request(
            base, note_url, "PUT", b'{"title": "x"}', {**json_headers, "If-Match": headers["ETag"]}
        )[0]
        == 200
    )
    assert _request(base, "/api/notes?limit=1")[0] == 200
    assert _request(base, "/api/notes?cursor=bad")[0] == 400
    assert _request(base, "/api/notes", "POST", b"{", json_headers)[0] == 400
    assert _request(base, "/api/notes", "POST", b"{}", json_headers)[0] == 422
    assert _request(base, "/api/notes", "POST", b"x", {"Content-Type": "text/plain"})[0] == 415
    assert _request(base, "/api/notes", "PATCH")[0] == 405
    assert _request(base, "/nowhere")[0] == 404
    status, headers, _body = _request(base, "/healthz", headers={"X-Request-ID": "probe-1"})
    assert headers["X-Request-ID"] == "probe-1"
    assert _request(base, note_url, "DELETE")[0] == 204

    out, err = proc.stop()
    assert proc.returncode == 0
    access = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert all(entry.get("event") == "access" for entry in access)
    probe = [entry for entry in access if entry["request_id"] == "probe-1"]
    assert len(probe) == 1
    assert probe[0]["method"] == "GET" and probe[0]["path"] == "/healthz"
    assert probe[0]["status"] == 200 and probe[0]["duration_ms"] >= 0
    statuses = {entry["status"] for entry in access}
    assert {200, 201, 204, 400, 404, 405, 412, 415, 422, 428} <= statuses
    for line in err.splitlines():
        json.loads(line)  # error log: JSON lines too


def _raw_post(
    base: str, framing: bytes, body: list[bytes], *, headers_only: bool = False
) -> bytes:
    """POST /api/notes over a raw socket: FRAMING is the Content-Length or
    Transfer-Encoding header line, BODY the pieces sent one after another. The reply is
    read to its end, or with HEADERS_ONLY to the end of its headers."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + framing
            + b"Connection: close\r\n\r\n"
        )
        for piece in body:
            sock.sendall(piece)
        reply = b""
        while not (headers_only and b"\r\n\r\n" in reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def _chunked(*pieces: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def test_declared_ten_megabytes_get_413_before_any_body_is_sent(server):
    base, _proc = server
    # Not one byte of the body is sent: the answer must not wait for it.
    reply = _raw_post(base, b"Content-Length: 10485760\r\n", [], headers_only=True)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in reply


def test_chunked_body_over_the_limit_is_413(server):
    base, _proc = server
    # 16 x 64 KiB is the limit exactly; 100 bytes more go over it. The server stops
    # reading there, so only those few bytes are left in flight when it answers.
    pieces = [b"a" * 65536] * 16 + [b"b" * 100]
    reply = _raw_post(base, b"Transfer-Encoding: chunked\r\n", _chunked(*pieces))
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in reply


def test_small_chunked_body_is_accepted(server):
    base, _proc = server
    reply = _raw_post(base, b"Transfer-Encoding: chunked\r\n", _chunked(b'{"title": "chunked"}'))
    assert reply.startswith(b"HTTP/1.1 201")


BAD_CONFIGURATIONS: list[tuple[dict[str, str | None], str]] = [
    ({"APP_ENV": "staging"}, "APP_ENV='staging'"),
    ({"APP_ENV": ""}, "APP_ENV is set but empty"),
    ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL='chatty'"),
    ({"DATABASE_URL": "postgresql://db/app"}, "DATABASE_URL="),
    ({"DATABASE_URL": "sqlite:////no/such/dir/app.db"}, "'/no/such/dir', which is not"),
    ({"DATABASE_URL": None}, "DATABASE_URL is not set"),
    ({"APP_ENV": None}, "APP_ENV is not set"),
    ({"APP_ENV": "prod", "SECRET_KEY_FILE": "/run/secrets/nope"}, "/run/secrets/nope"),
    ({"APP_ENV": "prod", "SECRET_KEY": "changeme"}, "placeholder"),
    ({"GUNICORN_WORKERS": "many"}, "GUNICORN_WORKERS='many'"),
    ({"GUNICORN_RELOAD": "yes"}, "GUNICORN_RELOAD='yes'"),
    (
        {"GUNICORN_RELOAD": "1", "APP_ENV": "prod", "SECRET_KEY": "k" * 40},
        "GUNICORN_RELOAD=1 is for APP_ENV=dev only",
    ),
    ({"GUNICORN_WORKERS": ""}, "GUNICORN_WORKERS is set but empty"),
    ({"GUNICORN_THREADS": "0"}, "GUNICORN_THREADS='0'"),
    ({"GUNICORN_TIMEOUT": "-5"}, "GUNICORN_TIMEOUT='-5'"),
    ({"GUNICORN_GRACEFUL_TIMEOUT": "1e3"}, "GUNICORN_GRACEFUL_TIMEOUT='1e3'"),
    ({"GUNICORN_MAX_REQUESTS": "lots"}, "GUNICORN_MAX_REQUESTS='lots'"),
    ({"GUNICORN_BIND": "localhost"}, "GUNICORN_BIND='localhost'"),
    ({"SECRET_KEY": ""}, "SECRET_KEY is set but empty"),
    ({"WEBAPP_METRICS_PORT": "0"}, "WEBAPP_METRICS_PORT='0'"),
    (
        {"GUNICORN_BIND": "127.0.0.1:9199", "WEBAPP_METRICS_PORT": "9199"},
        "WEBAPP_METRICS_PORT=9199 is GUNICORN_BIND's port too",
    ),
]


def test_each_slot_listens_on_its_own_socket_and_comes_back_undrained(tmp_path):
    sockets = tmp_path / "run"
    sockets.mkdir()
    # A marker left by the release that drained this slot before it was restarted.
    (sockets / "app_next.draining").touch()
    (sockets / "app.draining").touch()
    base, proc = _start(tmp_path, WEBAPP_SOCKET_DIR=str(sockets), WEBAPP_SLOT="app_next")
    try:
        assert _request(base, "/readyz")[0] == 200
        with socket.socket(socket.AF_UNIX) as unix:
            unix.settimeout(10)
            unix.connect(str(sockets / "app_next.sock"))
            unix.sendall(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := unix.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.0 200 ") and b'"slot": "app_next"' in answer
        # Its own marker is cleared at start; the other slot's is not its business.
        assert not (sockets / "app_next.draining").exists()
        assert (sockets / "app.draining").exists()
    finally:
        proc.stop()


def test_bad_configuration_stops_gunicorn_with_one_line(tmp_path):
    # All cases start at once (config errors stop the master before it binds or forks),
    # so the whole table costs about as much as one Gunicorn start.
    base = {"DATABASE_URL": f"sqlite:///{tmp_path}/app.db", "APP_ENV": "dev"}
    started = []
    for env, expected in BAD_CONFIGURATIONS:
        merged = {
            **base,
            "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
            "WEBAPP_METRICS_PORT": str(free_port()),
            **env,
        }
        environ = {name: value for name, value in merged.items() if value is not None}
        started.append((env, expected, _gunicorn(environ)))
    problems = []
    for env, expected, proc in started:
        out, err = proc.communicate(timeout=60)
        lines = err.strip().splitlines()
        if (
            proc.returncode == 0
            or len(lines) != 1
            or not lines[0].startswith("webapp: configuration error: ")
            or expected not in lines[0]
            or out
        ):
            problems.append(f"{env}: exit {proc.returncode}, stderr {err!r}, stdout {out!r}")
    assert problems == []


def test_concurrent_clients_through_gunicorn_lose_nothing(server):
    base, _proc = server
    json_headers = {"Content-Type": "application/json"}
    status, _headers, body = _request(
        base, "/api/notes", "POST", b'{"title": "counter", "body": "0"}', json_headers
    )
    assert status == 201
    url = "/api/notes/" + str(json.loads(body)["id"])
    clients, rounds = 6, 25
    outcomes: list[int] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for i in range(rounds):
            payload = json.dumps({"title": f"c{index}-{i}"}).encode()
            created = _request(base, "/api/notes", "POST", payload, json_headers)[0]
            got_status, got_headers, got_body = _request(base, url)
            value = int(json.loads(got_body)["body"])
            update = json.dumps({"title": "counter", "body": str(value + 1)}).encode()
            updated = _request(
                base, url, "PUT", update, {**json_headers, "If-Match": got_headers["ETag"]}
            )[0]
            with lock:
                outcomes.extend([created, got_status, updated])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert set(outcomes) <= {200, 201, 412}, sorted(set(outcomes))
    assert outcomes.count(201) == clients * rounds
    final = json.loads(_request(base, url)[2])
    assert int(final["body"]) == outcomes.count(200) - clients * rounds  # GETs were 200 too
    assert final["version"] == 1 + int(final["body"])
    total, cursor = 0, None
    for _ in range(50):  # bounded walk over the pages
        page = json.loads(
            _request(base, "/api/notes?limit=100" + (f"&cursor={cursor}" if cursor else ""))[2]
        )
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert total == clients * rounds + 1


def test_preloaded_app_gives_each_worker_its_own_connections(tmp_path):
    # --preload builds the app (and its engine) in the master; post_fork must drop the
    # inherited pool, or two workers would share one SQLite handle.
    base, server = _start(tmp_path, "--preload", GUNICORN_WORKERS="2")
    json_headers = {"Content-Type": "application/json"}
    try:
        results = []

        def writer(index: int) -> None:
            for i in range(20):
                payload = json.dumps({"title": f"pre{index}-{i}"}).encode()
                results.append(_request(base, "/api/notes", "POST", payload, json_headers)[0])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        page = json.loads(_request(base, "/api/notes?limit=100")[2])
        metrics_port = server.env["WEBAPP_METRICS_PORT"]
        scraped = _request(f"http://127.0.0.1:{metrics_port}", "/metrics")[2].decode()
    finally:
        _out, err = server.stop()
    # The preloaded app imported prometheus_client in the master: the workers still
    # count into the shared directory, not each into a copy of its own.
    created = 'webapp_http_requests_total{method="POST",route="notes",status="201"} 80.0'
    assert created in scraped.splitlines()
    assert results == [201] * 80
    assert len(page["items"]) == 80
    assert "Traceback" not in err
