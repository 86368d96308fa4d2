"""Drill 6, slow clients: 100 slowloris connections against the prod stack.

Each slow connection dribbles its request a byte at a time and never finishes its
headers (a "talker"), or finishes them and then reads the answer a byte at a time
through a tiny receive buffer (a "reader"). Meanwhile a few normal clients read and
write notes with a 5 s timeout each, and the drill records their success rate and p99
(a failed request counts with the time it took to fail).

Starvation is reported, not failed: Gunicorn's gthread workers give a connection a
thread until its headers are complete, so 2 workers x 4 threads are the stack's whole
budget for slow clients. The drill fails only on what must never happen: a note whose
creation was acknowledged is missing afterwards, the database fails its integrity
check, or a service crashed or restarted. It also reports whether normal traffic
recovers once the slow clients leave. The full run repeats the attack with more
threads and a shorter timeout, for comparison in the notes.
"""

from __future__ import annotations

import http.client
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from kit import console

CONNECTIONS = 100
READERS = 30  # of CONNECTIONS: the rest never finish their headers
TICK = 0.25  # seconds between two bytes on each slow connection
NORMAL_CLIENTS = 4
NORMAL_TIMEOUT = 5.0
RECOVERY_LIMIT = 60.0  # seconds normal traffic gets to come back after the attack
# Gunicorn settings to compare in the full run: (label, compose variables).
VARIANTS = [
    ("64 threads per worker", {"GUNICORN_THREADS": "64"}),
    ("timeout 5 s", {"GUNICORN_TIMEOUT": "5"}),
]


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0.99 for p99); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Tally:
    """Normal traffic's results, shared by the normal clients' threads."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    created: list[str] = field(default_factory=list)  # ids of acknowledged notes
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, milliseconds: float, ok: bool, created: str | None = None) -> None:
        with self.lock:
            self.latencies_ms.append(milliseconds)
            self.failures += 0 if ok else 1
            if created:
                self.created.append(created)

    @property
    def attempts(self) -> int:
        return len(self.latencies_ms)

    @property
    def success_rate(self) -> float:
        return 1.0 - self.failures / self.attempts if self.attempts else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def normal_client(port: int, tally: Tally, until: float, marker: str) -> None:
    """Alternate a listing and a create until `until`; each request bounded by the timeout.

    Every request comes on a new connection, as from independent users: a connection
    kept alive from before the attack would stay with a worker that happens to have a
    free thread, and hide what a newcomer meets.
    """
    number = 0
    while time.monotonic() < until:  # bounded by the clock; each step by NORMAL_TIMEOUT
        number += 1
        began = time.monotonic()
        created = None
        client = stack.Client(port, NORMAL_TIMEOUT)
        try:
            if number % 2:
                answer = client.request("GET", "/api/notes?limit=10")
            else:
                payload = {"title": f"{marker} {number}", "body": "normal traffic"}
                answer = client.request("POST", "/api/notes", payload)
                if answer.status == 201:
                    created = str(answer.json()["id"])
            ok = answer.status < 500
        except (OSError, ValueError, http.client.HTTPException):
            ok = False
        finally:
            client.close()
        tally.record((time.monotonic() - began) * 1000, ok, created)


def traffic(port: int, seconds: float, marker: str) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=normal_client, args=(port, tally, until, marker), daemon=True)
        for _ in range(NORMAL_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + NORMAL_TIMEOUT + 5)
    return tally


def slow_request(reader: bool) -> bytes:
    """What one slow connection sends: a request whose headers end only for readers."""
    head = f"GET /?slow={uuid.uuid4().hex[:8]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if reader:
        return (head + "Accept: text/html\r\n\r\n").encode()
    # Enough header lines for any run, under Gunicorn's limit of 100 fields.
    return (head + "".join(f"X-Slow-{n}: {n}\r\n" for n in range(90))).encode()


@dataclass
class SlowConnection:
    port: int
    reader: bool
    data: bytes = b""
    sent: int = 0
    sock: socket.socket | None = None

    def open(self) -> None:
        self.close()
        self.data, self.sent = slow_request(self.reader), 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.reader:  # a tiny window: the server's writes back up behind our reads
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.settimeout(2)
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        self.sock = sock

    def step(self) -> bool:
        """Send the next byte, or read one once the request is out; False when closed."""
        if self.sock is None:
            return False
        try:
            if self.sent < len(self.data):
                self.sent += self.sock.send(self.data[self.sent : self.sent + 1])
            else:
                return self.sock.recv(1) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Slowloris:
    """CONNECTIONS slow connections, each stepped every TICK on one thread; a connection
    the server closes is opened again, so the pressure holds for the whole attack."""

    def __init__(self, port: int) -> None:
        self.connections = [SlowConnection(port, n < READERS) for n in range(CONNECTIONS)]
        self.reopened = 0
        self.refused = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.is_set():  # bounded: stopped by the drill, at most the attack
            for connection in self.connections:
                if connection.step():
                    continue
                try:
                    connection.open()
                    self.reopened += 1
                except OSError:
                    self.refused += 1
            self.stop.wait(TICK)

    def __enter__(self) -> Slowloris:
        for connection in self.connections:
            try:
                connection.open()
            except OSError:
                self.refused += 1
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for connection in self.connections:
            connection.close()


@dataclass
class Attack:
    baseline: Tally
    attacked: Tally
    recovered_after: float | None  # seconds until normal traffic worked again; None: never
    reopened: int
    refused: int


def attack(prod: stack.DrillStack, seconds: float, marker: str) -> Attack:
    baseline = traffic(prod.port, min(5.0, seconds / 3), marker)
    with Slowloris(prod.port) as slow:
        time.sleep(2 * TICK)  # every slow connection has begun its request
        attacked = traffic(prod.port, seconds, marker)
        reopened, refused = slow.reopened, slow.refused
    began = time.monotonic()
    recovered_after = None
    while time.monotonic() - began < RECOVERY_LIMIT:  # bounded by RECOVERY_LIMIT
        try:
            if prod.client(NORMAL_TIMEOUT).request("GET", "/healthz").status == 200:
                recovered_after = time.monotonic() - began
                break
        except OSError:
            pass
        time.sleep(0.5)
    return Attack(baseline, attacked, recovered_after, reopened, refused)


def losses(prod: stack.DrillStack, created: list[str]) -> list[str]:
    """Acknowledged notes that the database no longer has."""
    client = prod.client()
    missing = [nid for nid in created if client.request("GET", f"/api/notes/{nid}").status != 200]
    client.close()
    return missing


def crashes(prod: stack.DrillStack) -> list[str]:
    problems = []
    for service in ("app", "sqlite"):
        state = prod.compose.inspect(service)
        if not state["State"]["Running"] or state["RestartCount"]:
            problems.append(
                f"{service} running={state['State']['Running']} restarts={state['RestartCount']}"
            )
    return problems


def describe(label: str, result: Attack) -> str:
    back = (
        f"back {result.recovered_after:.1f} s after the attack"
        if result.recovered_after is not None
        else f"not back {RECOVERY_LIMIT:.0f} s after the attack"
    )
    return (
        f"{label}: normal traffic {result.baseline.success_rate:.0%} ok, p99 "
        f"{result.baseline.p99_ms:.0f} ms ({result.baseline.attempts} requests) before; "
        f"{result.attacked.success_rate:.0%} ok, p99 {result.attacked.p99_ms:.0f} ms "
        f"({result.attacked.attempts} requests) under {CONNECTIONS} slow connections "
        f"({result.reopened} reopened after the server closed them); {back}"
    )


def drill_once(
    context: DrillContext, outcome: DrillOutcome, label: str, seconds: float, **variables: str
) -> Attack:
    marker = f"slow-{uuid.uuid4().hex[:6]}"
    check: Callable[[bool, str], bool] = outcome.check
    settings: dict[str, Any] = dict(variables)  # mypy would match a str to extra_files
    with stack.running(context, "slow-clients", **settings) as prod:
        with console.step(f"{label}: {CONNECTIONS} slow connections for {seconds:.0f} s"):
            result = attack(prod, seconds, marker)
        created = result.baseline.created + result.attacked.created
        missing = losses(prod, created)
        check(not missing, f"{label}: {len(missing)} acknowledged notes lost: {missing[:5]}")
        integrity = prod.integrity_check()
        check(integrity == "ok", f"{label}: integrity_check says {integrity!r}")
        for problem in crashes(prod):
            outcome.fail(f"{label}: a service crashed under slow clients: {problem}")
    outcome.notes.append(describe(label, result))
    return result


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="slow_clients")
    seconds = 10.0 if context.quick else 30.0
    result = drill_once(context, outcome, "prod settings (2 workers x 4 threads)", seconds)
    outcome.figures["slow_clients.connections"] = CONNECTIONS
    outcome.figures["slow_clients.normal_success_rate"] = round(result.attacked.success_rate, 4)
    outcome.figures["slow_clients.normal_p99_ms"] = round(result.attacked.p99_ms, 1)
    if result.attacked.success_rate < 0.99:
        outcome.notes.append(
            "normal traffic starves: each slow connection holds a Gunicorn thread until its "
            "headers end, and 8 threads cannot outlast 100 of them; a buffering reverse proxy "
            "(nginx in front of the app) is the cure"
        )
    if not context.quick:
        for label, variables in VARIANTS:
            drill_once(context, outcome, label, seconds / 2, **variables)
    return outcome
