"""Drill 2: eight clients write at once through the API; nothing may be lost.

Each client, on its own thread and connection, alternates creating a note of its own
with updating one of a few shared notes: GET it, then PUT with the ETag as If-Match. All
clients contend on the shared notes, so many updates are stale on arrival and must get
412. Every 200 names the version it produced; the audit then proves no acknowledged
update was overwritten: on each shared note the versions 2..N were each produced by
exactly one acknowledged update, and the final content is the last one's.
"""

from __future__ import annotations

import http.client
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from kit import console

CLIENTS = 8
OPERATIONS_FULL = 1000
OPERATIONS_QUICK = 100
SHARED_NOTES = 4
SHOWN_ERRORS = 5


@dataclass(frozen=True)
class Ack:
    """An update the API acknowledged: the body it wrote, the version it reported, and
    the version the client had read and named in If-Match."""

    body: str
    version: int
    read: int


@dataclass
class Ledger:
    """What the clients were told, kept under one lock."""

    requests: int = 0
    created: set[int] = field(default_factory=set)
    acks: dict[int, list[Ack]] = field(default_factory=dict)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def lost_updates(acks: list[Ack], final_version: int, final_body: str) -> int:
    """How many acknowledged updates of one note (created at version 1) it does not hold.

    Each version is produced by exactly one write, so two updates acknowledged with the
    same version mean one overwrote the other; a version the note never reached was not
    kept; the note's body must be the one acknowledged with its final version; and an
    update must land on the version its client read; one that lands further on replaced
    writes its client never saw (what a server ignoring If-Match does).
    """
    claims: dict[int, list[str]] = defaultdict(list)
    for ack in acks:
        claims[ack.version].append(ack.body)
    lost = 0
    blind = sum(1 for ack in acks if ack.version != ack.read + 1)
    for version, bodies in claims.items():
        if not 2 <= version <= final_version:
            lost += len(bodies)
            continue
        lost += len(bodies) - 1  # at most one of them can hold that version
        if version == final_version and final_body not in bodies:
            lost += 1
    return max(lost, blind)


def client_loop(
    port: int, number: int, operations: int, shared: list[int], ledger: Ledger
) -> None:
    client = stack.Client(port, timeout=60)
    requests = 0
    try:
        for step in range(operations):
            label = f"client {number} step {step}"
            try:
                if step % 2 == 0:
                    requests += 1
                    answer = client.request("POST", "/api/notes", {"title": label, "body": label})
                    if answer.status != 201:
                        ledger.error(
                            f"{label}: create answered {answer.status} {answer.body[:120]!r}"
                        )
                        continue
                    with ledger.lock:
                        ledger.created.add(answer.json()["id"])
                    continue
                note = shared[(number + step // 2) % len(shared)]
                requests += 2
                current = client.request("GET", f"/api/notes/{note}")
                if current.status != 200:
                    ledger.error(f"{label}: GET note {note} answered {current.status}")
                    continue
                etag = current.headers.get("ETag", "")
                updated = client.request(
                    "PUT", f"/api/notes/{note}", {"title": f"shared {note}", "body": label},
                    headers={"If-Match": etag},
                )  # fmt: skip
                if updated.status == 412:
                    with ledger.lock:
                        ledger.conflicts += 1
                elif updated.status == 200:
                    with ledger.lock:
                        read = current.json()["version"]
                        ledger.acks[note].append(Ack(label, updated.json()["version"], read))
                else:
                    ledger.error(f"{label}: PUT note {note} answered {updated.status}")
            except (OSError, http.client.HTTPException) as problem:
                ledger.error(f"{label}: {type(problem).__name__}: {problem}")
    finally:
        client.close()
        with ledger.lock:
            ledger.requests += requests


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="writers")
    operations = OPERATIONS_QUICK if context.quick else OPERATIONS_FULL
    ledger = Ledger()
    with stack.running(context, "writers") as prod:
        shared = []
        for index in range(SHARED_NOTES):
            made = prod.http.request("POST", "/api/notes", {"title": f"shared {index}"})
            if made.status != 201:
                outcome.fail(f"creating shared note {index} answered {made.status}")
                return outcome
            shared.append(made.json()["id"])
        ledger.acks = {note: [] for note in shared}
        threads = [
            threading.Thread(target=client_loop, args=(prod.port, n, operations, shared, ledger))
            for n in range(CLIENTS)
        ]
        with console.step(f"{CLIENTS} clients x {operations} creates and updates at once"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=900)
        if any(thread.is_alive() for thread in threads):
            outcome.fail("a writer thread was still running after 900 s")
            return outcome
        lost = 0
        for note in shared:
            final = prod.http.request("GET", f"/api/notes/{note}").json()
            lost += lost_updates(ledger.acks[note], final["version"], final["body"])
        stored = {int(n) for n in prod.compose.sql("SELECT id FROM notes;").split()}
        expected = ledger.created | set(shared)
        integrity = prod.integrity_check()
    acknowledged = sum(len(acks) for acks in ledger.acks.values())
    outcome.figures.update({
        "writers.requests": ledger.requests,
        "writers.errors": len(ledger.errors),
        "writers.lost_updates": lost,
    })  # fmt: skip
    outcome.notes.append(
        f"{CLIENTS} clients x {operations} operations (half creates, half GET + PUT with "
        f"If-Match on {SHARED_NOTES} shared notes): {len(ledger.created)} notes created, "
        f"{acknowledged} updates acknowledged, {ledger.conflicts} stale updates refused with 412"
    )
    if ledger.errors:
        outcome.fail(f"{len(ledger.errors)} requests failed, e.g. {ledger.errors[0]}")
        outcome.notes.extend(f"error: {error}" for error in ledger.errors[1:SHOWN_ERRORS])
    outcome.check(lost == 0, f"{lost} acknowledged updates were silently overwritten")
    missing, extra = expected - stored, stored - expected
    outcome.check(
        not missing and not extra,
        f"final count {len(stored)} != {len(expected)} acknowledged: {len(missing)} missing, "
        f"{len(extra)} unacknowledged notes present",
    )
    outcome.check(
        acknowledged > 0 and ledger.conflicts > 0,
        f"no contention shown: {acknowledged} updates, {ledger.conflicts} conflicts",
    )
    outcome.check(integrity == "ok", f"integrity_check after the writers: {integrity[:200]}")
    return outcome
