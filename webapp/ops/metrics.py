"""What each process records for Prometheus: requests, their latency, the write gate's wait.

Under Gunicorn the master points PROMETHEUS_MULTIPROC_DIR at a directory of its own
before any worker exists (webapp/ops/metrics_server.py), so every worker's values land in
memory-mapped files there and the master adds them up when it is scraped. Anywhere else
(tests, `python -m webapp db`) the same objects count in-process.

The request path pays one dict lookup per label set and two or three increments of
a mapped double: the label children are cached here, since prometheus_client's own
`labels()` validates and locks on every call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "webapp_http_requests",
    "HTTP requests answered by the app, by route, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "webapp_http_request_duration_seconds",
    "Time from the request reaching the app to its response, by route and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
GATE_WAIT = Histogram(
    "webapp_write_gate_wait_seconds",
    "Time a writer waited for its turn at the write gate; outcome=timeout when it gave "
    "up after the busy timeout and went on to SQLite's own lock.",
    ["outcome"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)

# Any other method becomes "other", so a client inventing methods cannot add series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
NO_ROUTE = "none"

_counters: dict[tuple[str, str, str], Any] = {}
_latencies: dict[tuple[str, str], Any] = {}
_gate_waits = {outcome: GATE_WAIT.labels(outcome) for outcome in ("turn", "timeout")}


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    if method not in METHODS:
        method = "other"
    key = (route, method, str(status))
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = REQUESTS.labels(*key)
    counter.inc()
    latency = _latencies.get(key[:2])
    if latency is None:
        latency = _latencies[key[:2]] = LATENCY.labels(route, method)
    latency.observe(seconds)


def record_gate_wait(seconds: float, *, got_turn: bool) -> None:
    _gate_waits["turn" if got_turn else "timeout"].observe(seconds)


Handler = Callable[[Any], Any]


def metrics_tween_factory(handler: Handler, _registry: Any) -> Handler:
    """The outermost tween: it sees the final status, error pages included."""
    clock = time.perf_counter

    def metrics_tween(request: Any) -> Any:
        start = clock()
        status = 500  # what Gunicorn answers if an exception gets past every view
        try:
            response = handler(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request, "matched_route", None)
            record_request(
                NO_ROUTE if route is None else route.name, request.method, status, clock() - start
            )

    return metrics_tween
