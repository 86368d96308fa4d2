"""HTTP load: wrk against the prod stack (plus the bare baselines) on loopback.

The stack is the real prod compose project under its own name and ports, with
bench/compose.bench.yaml adding the `baseline` service on the same image and Gunicorn
settings. Every run is bounded by wrk's own duration and a subprocess timeout.
"""

# The bench runs wrk by name, as the kit runs docker (kit/** has the same exemption):
# every argument is built here, none comes from a user.
# ruff: noqa: S603

from __future__ import annotations

import json
import resource
import socket
import subprocess
import threading
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.wrk_result import WrkResult, parse
from kit import console, stack
from webapp.settings import VARIABLES

SCRIPT = Path(__file__).parent / "wrk" / "scenario.lua"
PROJECT = "webapp-bench"
COMPOSE_FILES = "compose/compose.yaml:compose/compose.prod.yaml:bench/compose.bench.yaml"
# The Gunicorn setting every scenario runs on: the stack's own default.
DEFAULT = (int(VARIABLES["GUNICORN_WORKERS"].default or 0),
           int(VARIABLES["GUNICORN_THREADS"].default or 0))  # fmt: skip
WRK_THREADS = 2
WRK_CONNECTIONS = 16
# Scenario name → (which server, wrk scenario). Baselines hit the `baseline` service.
SCENARIOS = {
    "baseline_hello": ("baseline", "hello"),
    "baseline_sqlite_insert": ("baseline", "insert"),
    "get_note": ("app", "get_note"),
    # The same reads through the edge proxy (Caddy, then the unix socket): its overhead.
    "proxy_get_note": ("proxy", "get_note"),
    "list": ("app", "list"),
    "search": ("app", "search"),
    "create_note": ("app", "create_note"),
    "update_note": ("app", "update_note"),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Stack:
    """The bench's own prod stack; `configure` (re)starts it with a Gunicorn setting."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.app_port = free_port()
        self.baseline_port = free_port()
        self.metrics_port = free_port()
        self.proxy_port = free_port()
        self.proxy_tls_port = free_port()
        self.proxy_metrics_port = free_port()
        self.replica_metrics_port = free_port()

    def overrides(self, workers: int, threads: int) -> dict[str, str]:
        return {
            "COMPOSE_FILE": COMPOSE_FILES,
            "COMPOSE_PROJECT_NAME": PROJECT,
            "WEBAPP_PORT": str(self.app_port),
            "WEBAPP_METRICS_PORT": str(self.metrics_port),
            "WEBAPP_BIND_ADDRESS": "127.0.0.1",
            "WEBAPP_PUBLIC_ADDRESS": "127.0.0.1",
            "WEBAPP_HTTP_PORT": str(self.proxy_port),
            "WEBAPP_HTTPS_PORT": str(self.proxy_tls_port),
            "WEBAPP_PROXY_METRICS_PORT": str(self.proxy_metrics_port),
            "WEBAPP_REPLICA_METRICS_PORT": str(self.replica_metrics_port),
            "BENCH_BASELINE_PORT": str(self.baseline_port),
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            # Recycling workers mid-run would measure Gunicorn's restarts, not the app.
            "GUNICORN_MAX_REQUESTS": "0",
        }

    def configure(self, workers: int, threads: int) -> float:
        started = stack.up("prod", image=self.image, overrides=self.overrides(workers, threads))
        return started.seconds

    def down(self) -> None:
        stack.down("prod", volumes=True, overrides=self.overrides(1, 1))

    def url(self, server: str) -> str:
        ports = {"app": self.app_port, "proxy": self.proxy_port, "baseline": self.baseline_port}
        port = ports[server]
        return f"http://127.0.0.1:{port}"


def seed(base_url: str, count: int) -> tuple[int, int]:
    """Create `count` notes so reads, searches and updates have rows; their id range."""
    ids = []
    for number in range(count):
        body = json.dumps(
            {"title": f"seed {number}", "body": f"alpha bravo {number}", "tags": ["seed"]}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (plain http to loopback)
            f"{base_url}/api/notes",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            ids.append(int(json.loads(response.read())["id"]))
    return min(ids), max(ids)


def run_wrk(base_url: str, scenario: str, seconds: int, id_range: tuple[int, int]) -> WrkResult:
    """One bounded wrk run; its CPU time (user + system) as % of one core over the run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(SCRIPT), base_url, "--",
        scenario, str(id_range[0]), str(id_range[1]), str(WRK_THREADS),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse(result.stdout + result.stderr, generator_cpu_pct=100 * cpu / seconds)


def measure(
    image: str, *, seconds: int, seed_count: int, sweep: list[tuple[int, int]]
) -> tuple[dict[str, Any], threading.Thread]:
    """Every scenario on the default setting, then the workers x threads sweep; and the
    stack's removal, already started, for the caller to join before it finishes.
    """
    bench_stack = Stack(image)
    scenarios: dict[str, dict[str, Any]] = {}
    rows = []
    try:
        workers, threads = DEFAULT
        with console.step(
            f"Starting the prod stack with the bare baselines ({workers} x {threads})"
        ):
            bench_stack.configure(workers, threads)
            id_range = seed(bench_stack.url("app"), seed_count)
        for name, (server, scenario) in SCENARIOS.items():
            result = run_wrk(bench_stack.url(server), scenario, seconds, id_range)
            scenarios[name] = {**asdict(result), "rps": result.rps}
            console.detail(
                f"{name:24} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
                f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}  "
                f"wrk CPU {result.generator_cpu_pct:.0f} %"
            )
        for workers, threads in sweep:
            with console.step(f"Sweep: Gunicorn {workers} workers x {threads} threads"):
                bench_stack.configure(workers, threads)
                get = run_wrk(bench_stack.url("app"), "get_note", seconds, id_range)
                create = run_wrk(bench_stack.url("app"), "create_note", seconds, id_range)
                rows.append(
                    {
                        "workers": workers,
                        "threads": threads,
                        "get_note_rps": get.rps,
                        "create_note_rps": create.rps,
                    }
                )
                console.detail(f"get_note {get.rps:.0f} req/s, create_note {create.rps:.0f} req/s")
    except BaseException:
        with console.step("Removing the bench stack and its volumes"):
            bench_stack.down()
        raise
    # Removing the stack takes seconds of waiting on Docker, not CPU: it overlaps the
    # next phase instead of delaying it.
    console.detail("removing the bench stack in the background")
    teardown = threading.Thread(target=bench_stack.down, name="bench-stack-down")
    teardown.start()
    if rows:
        best = max(rows, key=lambda row: row["get_note_rps"] * row["create_note_rps"])
        best["best"] = True
    return {"scenarios": scenarios, "sweep": rows}, teardown


def flat_keys(measured: dict[str, Any]) -> dict[str, float]:
    s = measured["scenarios"]
    return {
        "http.baseline_hello_rps": s["baseline_hello"]["rps"],
        "http.baseline_sqlite_insert_rps": s["baseline_sqlite_insert"]["rps"],
        "http.get_note_rps": s["get_note"]["rps"],
        "http.proxy_get_note_rps": s["proxy_get_note"]["rps"],
        "http.list_rps": s["list"]["rps"],
        "http.search_rps": s["search"]["rps"],
        "http.create_note_rps": s["create_note"]["rps"],
        "http.update_note_rps": s["update_note"]["rps"],
        "http.get_note_p99_ms": s["get_note"]["p99_ms"],
        "http.create_note_p99_ms": s["create_note"]["p99_ms"],
        "http.errors": sum(row["errors"] for row in s.values()),
    }
