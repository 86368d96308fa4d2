"""The Gunicorn master's side of the metrics: one directory for every worker's values, a
dead worker's values folded away, and `/metrics` served on WEBAPP_METRICS_PORT.

Each worker writes its counts into memory-mapped files of its own (prometheus_client's
multiprocess mode) under a directory that belongs to this master: named after the
metrics port, which only one live process can hold, and emptied once the port is bound,
so a master killed earlier leaves nothing behind that is counted again.

prometheus_client keeps a dead worker's files, so its counts survive it; but Gunicorn
recycles a worker every GUNICORN_MAX_REQUESTS requests, and a scrape would read one
more set of files per recycled worker, without end. So when a worker exits the master
adds its counters and histograms into one archive file per type and deletes its files:
totals never go backwards and a scrape reads one file per live worker, plus the archive.
The master serves the scrapes too, so one lock keeps a scrape from reading a dead
worker's counts twice (from its file and from the archive) or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

# prometheus_client picks its value store when first imported, from the environment:
# nothing here imports it at module level, so gunicorn.conf.py can set the directory
# first, in the master, before any worker (or a preloaded app) imports it.
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVED_TYPES = ("counter", "histogram", "summary")
PATH = "/metrics"


def directory_for(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"webapp-metrics-{port}"


def prepare(port: int) -> Path:
    """Point the workers at this master's directory; the master's own start empties it."""
    path = directory_for(port)
    if os.environ.get(DIRECTORY_VARIABLE) != str(path) and "prometheus_client" in sys.modules:
        # Its workers would count in-process, each for itself, and /metrics would say 0.
        raise RuntimeError("prometheus_client was imported before its directory was set")
    path.mkdir(mode=0o700, exist_ok=True)
    os.environ[DIRECTORY_VARIABLE] = str(path)
    return path


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # Prometheus scrapes every few seconds: not worth a log line each


class Exporter:
    """The master's view over every worker's values, plus what only the master knows."""

    def __init__(
        self,
        directory: Path,
        *,
        database: Path,
        build: dict[str, str],
        workers: Callable[[], int],
    ) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.directory = directory
        self.database = database
        self.build = build
        self.workers = workers
        self.exited = 0
        self._lock = threading.Lock()
        self._archives: dict[str, Any] = {}
        self._workers_collector = MultiProcessCollector(None, str(directory))
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.server: _Server | None = None

    def empty(self) -> None:
        for entry in self.directory.iterdir():
            entry.unlink()

    def worker_exited(self, pid: int) -> None:
        from prometheus_client.mmap_dict import MmapedDict
        from prometheus_client.multiprocess import mark_process_dead

        with self._lock:
            self.exited += 1
            for kind in ARCHIVED_TYPES:
                dead = self.directory / f"{kind}_{pid}.db"
                if not dead.exists():
                    continue
                archive = self._archives.get(kind)
                if archive is None:
                    archive = MmapedDict(str(self.directory / f"{kind}_archive.db"))
                    self._archives[kind] = archive
                # Zeros too: a histogram's file holds each bucket uncumulated, so the +Inf
                # bucket is usually 0, and the collector emits only the buckets it finds.
                for key, value, _time, _pos in MmapedDict.read_all_values_from_file(str(dead)):
                    total, _ = archive.read_value(key)
                    archive.write_value(key, total + value, 0.0)
                dead.unlink()
            mark_process_dead(pid, str(self.directory))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            merged = list(self._workers_collector.collect())
        yield from merged
        size = GaugeMetricFamily(
            "webapp_database_bytes", "Size of the SQLite database's files.", labels=["file"]
        )
        for label, path in (("database", self.database), ("wal", _beside(self.database, "-wal"))):
            # No WAL file between checkpoints, or no database yet: no sample.
            with contextlib.suppress(OSError):
                size.add_metric([label], path.stat().st_size)
        yield size
        try:
            stats = os.statvfs(self.database.parent)
        except OSError:
            pass
        else:
            yield GaugeMetricFamily(
                "webapp_data_volume_free_bytes",
                "Space left for the database on its volume.",
                value=stats.f_bavail * stats.f_frsize,
            )
        yield GaugeMetricFamily(
            "webapp_gunicorn_workers", "Gunicorn workers alive.", value=self.workers()
        )
        yield CounterMetricFamily(
            "webapp_gunicorn_worker_exits",
            "Workers that exited since the master started (recycled, killed or crashed).",
            value=self.exited,
        )
        info = GaugeMetricFamily(
            "webapp_build_info", "The running build (always 1).", labels=sorted(self.build)
        )
        info.add_metric([self.build[name] for name in sorted(self.build)], 1)
        yield info

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if environ.get("PATH_INFO") != PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"not found; metrics are at {PATH}\n".encode()]
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return []
        body = generate_latest(self.registry)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        )
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]

    def close(self) -> None:
        with self._lock:
            for archive in self._archives.values():
                archive.close()
            self._archives.clear()
        if self.server is not None:
            self.server.server_close()

    def serve(self, host: str, port: int) -> None:
        server_class: type[_Server] = _Server6 if ":" in host else _Server
        self.server = server_class((host, port), _QuietHandler)
        self.server.set_app(self.app)
        threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True).start()


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


_exporter: Exporter | None = None


def start(
    *,
    host: str,
    port: int,
    database: Path,
    build: dict[str, str],
    workers: Callable[[], int],
) -> None:
    """Bind the port, empty the directory, serve. A port in use stops the master."""
    global _exporter
    if _exporter is not None:
        return  # a configuration reload (SIGHUP) keeps the running exporter
    exporter = Exporter(directory_for(port), database=database, build=build, workers=workers)
    try:
        exporter.serve(host, port)
    except OSError as exc:
        print(
            f"webapp: configuration error: WEBAPP_METRICS_PORT={port} cannot be bound on "
            f"{host} ({exc.strerror}); free the port or set WEBAPP_METRICS_PORT to another",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2) from None
    exporter.empty()
    _exporter = exporter


def worker_exited(pid: int) -> None:
    if _exporter is not None:
        _exporter.worker_exited(pid)


def close_in_worker() -> None:
    """A worker inherits the master's listening socket; only the master answers on it."""
    if _exporter is not None and _exporter.server is not None:
        _exporter.server.socket.close()


def stop() -> None:
    global _exporter
    if _exporter is None:
        return
    _exporter.close()
    shutil.rmtree(_exporter.directory, ignore_errors=True)
    _exporter = None
