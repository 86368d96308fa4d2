"""Prometheus metrics from a real Gunicorn: every worker's counts in one answer, kept
across recycled workers, on a port of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from harness.ports import free_port
from webapp.ops import metrics_server

from .test_gunicorn import Server, _gunicorn, _request, _start

JSON = {"Content-Type": "application/json"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(server: Server) -> Samples:
    port = server.env["WEBAPP_METRICS_PORT"]
    status, headers, body = _request(f"http://127.0.0.1:{port}", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_add_up_across_workers_and_survive_recycled_ones(tmp_path: Path) -> None:
    # Two workers, each recycled after about five requests: the requests below are
    # served by a dozen processes, most of them dead by the time of the scrape.
    base, server = _start(tmp_path, GUNICORN_MAX_REQUESTS="5", TMPDIR=str(tmp_path))
    clients, rounds = 4, 10
    try:
        before = _scrape(server)

        def client() -> None:
            for _ in range(rounds):
                assert _request(base, "/version")[0] == 200
                assert _request(base, "/api/notes", "POST", b'{"title": "n"}', JSON)[0] == 201

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _request(base, "/nowhere")[0] == 404
        assert _request(base, "/api/notes", "POST", b"{", JSON)[0] == 400
        after = _scrape(server)
        directory = tmp_path / f"webapp-metrics-{server.env['WEBAPP_METRICS_PORT']}"
        files = sorted(path.name for path in directory.iterdir())
        db_size = (tmp_path / "app.db").stat().st_size
    finally:
        server.stop()

    total = clients * rounds
    requests = "webapp_http_requests_total"
    assert _value(after, requests, route="version", method="GET", status="200") == total
    assert _value(after, requests, route="notes", method="POST", status="201") == total
    assert _value(after, requests, route="none", method="GET", status="404") == 1
    assert _value(after, requests, route="notes", method="POST", status="400") == 1
    latency = "webapp_http_request_duration_seconds"
    assert _value(after, f"{latency}_count", route="version", method="GET") == total
    assert _value(after, f"{latency}_bucket", route="version", method="GET", le="+Inf") == total
    assert 0 < _value(after, f"{latency}_sum", route="notes", method="POST") < total * 10
    # Every created note went through the write gate at least once (retries add more).
    waits = _value(after, "webapp_write_gate_wait_seconds_count", outcome="turn")
    waits_before = _value(before, "webapp_write_gate_wait_seconds_count", outcome="turn")
    assert waits - waits_before >= total
    exits = _value(after, "webapp_gunicorn_worker_exits_total")
    # Each serves five or six requests, a few more when its threads had some in flight.
    assert exits >= 5
    assert _value(after, "webapp_gunicorn_workers") == 2
    assert _value(after, "webapp_database_bytes", file="database") == db_size
    assert _value(after, "webapp_data_volume_free_bytes") > 0
    # Dead workers' files are folded into one archive per type: what a scrape reads stays
    # at one set per live worker, however many have been recycled.
    assert len(files) <= 2 * 2 + 2, files
    assert {"counter_archive.db", "histogram_archive.db"} <= set(files)
    # A clean stop removes the directory.
    assert not directory.exists()


def test_metrics_are_not_on_the_app_port_and_the_app_is_not_on_theirs(tmp_path: Path) -> None:
    base, server = _start(tmp_path)
    metrics = f"http://127.0.0.1:{server.env['WEBAPP_METRICS_PORT']}"
    try:
        status, headers, _body = _request(base, "/metrics")
        assert status == 404 and headers["Content-Type"] == "application/problem+json"
        assert _request(metrics, "/healthz")[0] == 404
        assert _request(metrics, "/metrics", "POST", b"")[0] == 405
        assert _request(metrics, "/metrics")[0] == 200
    finally:
        server.stop()


def test_a_metrics_port_in_use_stops_gunicorn_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _gunicorn(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
                "APP_ENV": "dev",
                "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
                "WEBAPP_METRICS_PORT": str(port),
            }
        )
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("webapp: ")]
    assert errors == [
        f"webapp: configuration error: WEBAPP_METRICS_PORT={port} cannot be bound on "
        "127.0.0.1 (Address already in use); free the port or set WEBAPP_METRICS_PORT to "
        "another"
    ]


def _worker(directory: Path, requests: int) -> int:
    """A real process that records like a Gunicorn worker, then exits; its pid."""
    script = (
        "import os, sys\n"
        "from webapp.ops import metrics\n"
        "for _ in range(int(sys.argv[1])):\n"
        "    metrics.record_request('note', 'GET', 200, 0.002)\n"
        "metrics.record_gate_wait(0.0003, got_turn=True)\n"
        "print(os.getpid())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(requests)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_dead_workers_are_folded_into_the_archive_without_losing_a_count(tmp_path: Path) -> None:
    database = tmp_path / "data" / "app.db"
    database.parent.mkdir()
    database.write_bytes(b"x" * 4096)
    exporter = metrics_server.Exporter(
        tmp_path, database=database, build={"version": "1", "revision": "r"}, workers=lambda: 2
    )

    def scraped() -> Samples:
        samples: Samples = {}
        for family in exporter.collect():
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    pids = [_worker(tmp_path, count) for count in (3, 4, 5)]
    before = scraped()
    for pid in pids[:2]:
        exporter.worker_exited(pid)
    after = scraped()
    key = ("webapp_http_requests_total", (("method", "GET"), ("route", "note"), ("status", "200")))
    assert before[key] == after[key] == 12
    bucket = ("webapp_http_request_duration_seconds_bucket",
              (("le", "0.0025"), ("method", "GET"), ("route", "note")))  # fmt: skip
    assert before[bucket] == after[bucket] == 12
    assert after[("webapp_write_gate_wait_seconds_count", (("outcome", "turn"),))] == 3
    assert after[("webapp_gunicorn_worker_exits_total", ())] == 2
    assert after[("webapp_database_bytes", (("file", "database"),))] == 4096
    assert ("webapp_database_bytes", (("file", "wal"),)) not in after  # no WAL file: no sample
    names = sorted(path.name for path in tmp_path.glob("*.db"))
    assert names == sorted(
        ["counter_archive.db", "histogram_archive.db", f"counter_{pids[2]}.db",
         f"histogram_{pids[2]}.db"]
    )  # fmt: skip
    # Once every worker is dead the archive alone answers, with every bucket up to +Inf
    # (a file holds them uncumulated: the empty ones count as much as the full ones).
    exporter.worker_exited(pids[2])
    folded = scraped()
    inf = ("webapp_http_request_duration_seconds_bucket",
           (("le", "+Inf"), ("method", "GET"), ("route", "note")))  # fmt: skip
    assert folded[inf] == folded[bucket] == 12
    # The WSGI answer: the text format, only on /metrics, only GET and HEAD.
    answers: list[str] = []

    def start_response(status: str, _headers: list[tuple[str, str]]) -> None:
        answers.append(status)

    body = b"".join(
        exporter.app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, start_response)
    )
    assert b'webapp_build_info{revision="r",version="1"} 1.0' in body
    assert exporter.app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "HEAD"}, start_response) == []
    exporter.app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, start_response)
    exporter.app({"PATH_INFO": "/metrics", "REQUEST_METHOD": "DELETE"}, start_response)
    assert answers == ["200 OK", "200 OK", "404 Not Found", "405 Method Not Allowed"]
    exporter.close()
