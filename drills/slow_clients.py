"""Drill 6, slow clients: slowloris connections against the prod stack's edge proxy.

Three kinds of slow connection, the same number of each: "talkers" dribble their
headers a byte at a time and never finish them, "bodies" send whole headers and then
dribble a declared body, and "readers" send a whole request and read the answer a byte
at a time through a tiny receive buffer. A connection the proxy cuts is opened again, so
the pressure holds. Meanwhile a few normal clients read and write notes through the
proxy with a 5 s timeout each, and the drill records their success rate and p99 (a
failed request counts with the time it took to fail), against the targets: at least
99 % answered and p99 at most 250 ms.

The proxy (Caddy) reads headers and buffers bodies before it takes an app thread, so
the slow connections meet only its timeouts. The drill fails only on what must never
happen: a note whose creation was acknowledged is missing afterwards, the database
fails its integrity check, or a service crashed or restarted. It also reports whether
normal traffic recovers once the slow clients leave.
"""

from __future__ import annotations

import http.client
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from kit import console

KINDS = ("talker", "body", "reader")
PER_KIND = {"quick": 100, "full": 1000}  # slow connections of each kind
BODY_BYTES = 100_000  # what a slow body declares; under the app's limit
TICK = 0.25  # seconds between two bytes on each slow connection
NORMAL_CLIENTS = 4
NORMAL_TIMEOUT = 5.0
RECOVERY_LIMIT = 60.0  # seconds normal traffic gets to come back after the attack
TARGET_SUCCESS = 0.99
TARGET_P99_MS = 250.0


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


def slow_request(kind: str) -> bytes:
    """What one slow connection sends: headers that never end (a talker), a body declared
    but sent a byte at a time (a body), or a whole request (a reader)."""
    head = f"GET /?slow={uuid.uuid4().hex[:8]} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if kind == "reader":
        return (head + "Accept: text/html\r\n\r\n").encode()
    if kind == "body":
        post = head.replace("GET /?", "POST /api/notes?", 1)
        return (
            post + "Content-Type: application/json\r\n"
            f"Content-Length: {BODY_BYTES}\r\n\r\n" + " " * BODY_BYTES
        ).encode()
    # Enough header lines for any run, under Gunicorn's limit of 100 fields.
    return (head + "".join(f"X-Slow-{n}: {n}\r\n" for n in range(90))).encode()


@dataclass
class SlowConnection:
    port: int
    kind: str
    data: bytes = b""
    sent: int = 0
    sock: socket.socket | None = None

    def open(self) -> None:
        self.close()
        self.data, self.sent = slow_request(self.kind), 0
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.kind == "reader":  # a tiny window: the server's writes back up behind our reads
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
    """`per_kind` slow connections of each kind, each stepped every TICK on one thread; a
    connection the server closes is opened again, so the pressure holds all along."""

    def __init__(self, port: int, per_kind: int) -> None:
        self.connections = [SlowConnection(port, kind) for kind in KINDS for _ in range(per_kind)]
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


def attack(prod: stack.DrillStack, seconds: float, marker: str, per_kind: int) -> Attack:
    port = prod.compose.http_port  # the proxy: the door every client uses
    baseline = traffic(port, min(5.0, seconds / 3), marker)
    with Slowloris(port, per_kind) as slow:
        time.sleep(2 * TICK)  # every slow connection has begun its request
        attacked = traffic(port, seconds, marker)
        reopened, refused = slow.reopened, slow.refused
    began = time.monotonic()
    recovered_after = None
    while time.monotonic() - began < RECOVERY_LIMIT:  # bounded by RECOVERY_LIMIT
        try:
            answer = stack.Client(port, NORMAL_TIMEOUT).request("GET", "/healthz")
            if answer.status == 200:
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
    for service in ("proxy", "app", "sqlite"):
        state = prod.compose.inspect(service)
        if not state["State"]["Running"] or state["RestartCount"]:
            problems.append(
                f"{service} running={state['State']['Running']} restarts={state['RestartCount']}"
            )
    return problems


def describe(label: str, result: Attack, per_kind: int) -> str:
    back = (
        f"back {result.recovered_after:.1f} s after the attack"
        if result.recovered_after is not None
        else f"not back {RECOVERY_LIMIT:.0f} s after the attack"
    )
    return (
        f"{label}: normal traffic {result.baseline.success_rate:.0%} ok, p99 "
        f"{result.baseline.p99_ms:.0f} ms ({result.baseline.attempts} requests) before; "
        f"{result.attacked.success_rate:.0%} ok, p99 {result.attacked.p99_ms:.0f} ms "
        f"({result.attacked.attempts} requests) under {per_kind} slow connections of each "
        f"kind ({', '.join(KINDS)}) "
        f"({result.reopened} reopened after the server closed them); {back}"
    )


def drill_once(
    context: DrillContext, outcome: DrillOutcome, label: str, seconds: float, per_kind: int
) -> Attack:
    marker = f"slow-{uuid.uuid4().hex[:6]}"
    check: Callable[[bool, str], bool] = outcome.check
    with stack.running(context, "slow-clients") as prod:
        with console.step(
            f"{label}: {per_kind} slow connections of each kind for {seconds:.0f} s"
        ):
            result = attack(prod, seconds, marker, per_kind)
        created = result.baseline.created + result.attacked.created
        missing = losses(prod, created)
        check(not missing, f"{label}: {len(missing)} acknowledged notes lost: {missing[:5]}")
        integrity = prod.integrity_check()
        check(integrity == "ok", f"{label}: integrity_check says {integrity!r}")
        for problem in crashes(prod):
            outcome.fail(f"{label}: a service crashed under slow clients: {problem}")
    outcome.notes.append(describe(label, result, per_kind))
    return result


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="slow_clients")
    seconds = 10.0 if context.quick else 30.0
    per_kind = PER_KIND["quick" if context.quick else "full"]
    result = drill_once(context, outcome, "through the proxy, prod settings", seconds, per_kind)
    outcome.figures["slow_clients.connections"] = per_kind * len(KINDS)
    outcome.figures["slow_clients.normal_requests"] = result.attacked.attempts
    outcome.figures["slow_clients.normal_success_rate"] = round(result.attacked.success_rate, 4)
    outcome.figures["slow_clients.normal_p99_ms"] = round(result.attacked.p99_ms, 1)
    met = (
        result.attacked.success_rate >= TARGET_SUCCESS and result.attacked.p99_ms <= TARGET_P99_MS
    )
    outcome.notes.append(
        f"targets (≥ {TARGET_SUCCESS:.0%} answered, p99 ≤ {TARGET_P99_MS:.0f} ms): "
        + ("met" if met else "missed")
        + f"; load average {os.getloadavg()[0]:.1f} at the end"
    )
    return outcome
