"""SIGKILL the app and the sqlite service in the middle of concurrent writes, repeatedly.

A write counts as acknowledged when the API answered 201 with the note. After every kill
the prod restart policy must bring the killed containers back to healthy by itself, and at
the end every acknowledged note must still be there and SQLite's integrity check must say
ok.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from compose_stack import Stack, run, wait_for

CYCLES = 10
WRITERS = 4
# Bounds: each writer stops after this many attempts in a cycle, whatever happens.
MAX_ATTEMPTS_PER_CYCLE = 3000
ACKS_BEFORE_KILL = 20
ACKS_AFTER_RESTART = 10
# Which containers each cycle kills, in turn: the app, the data service, then both.
TARGETS = (("app",), ("sqlite",), ("app", "sqlite"))
CRASH_FROM_HOST = os.geteuid() == 0


class Writers:
    """A bounded concurrent write loop that remembers exactly what the API acknowledged."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.acknowledged: dict[int, str] = {}
        self.failures = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.counter = itertools.count()
        self.threads: list[threading.Thread] = []

    def _write(self) -> None:
        for _ in range(MAX_ATTEMPTS_PER_CYCLE):
            if self.stop.is_set():
                return
            title = f"crash-{next(self.counter)}"
            try:
                answer = self.stack.request("POST", "/api/notes", {"title": title, "body": "x"},
                                            timeout=10)  # fmt: skip
            except (OSError, http.client.HTTPException):
                answer = None
            with self.lock:
                if answer is not None and answer.status == 201:
                    self.acknowledged[answer.json()["id"]] = title
                else:
                    self.failures += 1
            if answer is None or answer.status != 201:
                self.stop.wait(0.05)

    def start(self) -> None:
        self.stop.clear()
        self.threads = [threading.Thread(target=self._write) for _ in range(WRITERS)]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self.threads)

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)


@pytest.fixture(scope="module")
def crash_stack(stacks: Any, secret_file: Path) -> Stack:
    # Frequent backups, so some kills land while the sqlite service is mid-backup.
    stack: Stack = stacks("prod", "crash", WEBAPP_SECRET_KEY_FILE=str(secret_file),
                          BACKUP_INTERVAL="3", BACKUP_KEEP="2")  # fmt: skip
    stack.up()
    return stack


def crash(stack: Stack, service: str) -> int:
    """SIGKILL the service's main process; return its restart count before the kill.

    As root, the process is killed from the host, the way the OOM killer or a crash ends
    it, so the restart policy applies. Otherwise `docker kill`, which the engine treats as
    a deliberate stop: the stack is then started again by `up`.
    """
    state = stack.inspect(service)
    if CRASH_FROM_HOST:
        os.kill(state["State"]["Pid"], signal.SIGKILL)
    else:
        run(["docker", "kill", "--signal", "KILL", state["Id"]])
    return int(state["RestartCount"])


def recovered(stack: Stack, service: str, before: int) -> bool:
    state = stack.inspect(service)
    health = state["State"].get("Health", {}).get("Status")
    return bool(state["RestartCount"] > before and health == "healthy")


def all_note_titles(stack: Stack) -> dict[int, str]:
    """Every note through the API's keyset pagination (bounded by the page count)."""
    titles: dict[int, str] = {}
    cursor = None
    for _ in range(10_000):
        path = "/api/notes?limit=100" + (f"&cursor={cursor}" if cursor else "")
        page = stack.request("GET", path).json()
        titles.update({item["id"]: item["title"] for item in page["items"]})
        cursor = page.get("next_cursor")
        if not cursor:
            return titles
    raise AssertionError("pagination did not end")


def test_sigkill_cycles_lose_no_acknowledged_write(crash_stack: Stack) -> None:
    writers = Writers(crash_stack)
    kills = 0
    for cycle in range(CYCLES):
        writers.start()
        floor = writers.count()
        wait_for(lambda f=floor: writers.count() >= f + ACKS_BEFORE_KILL,
                 attempts=300, pause=0.1, what="writes before the kill")  # fmt: skip
        targets = TARGETS[cycle % len(TARGETS)]
        restarts = {service: crash(crash_stack, service) for service in targets}
        kills += len(targets)
        if CRASH_FROM_HOST:
            # A process that dies on its own is restarted by the engine (unless-stopped),
            # and reports healthy again with no help.
            for service, before in restarts.items():
                wait_for(
                    lambda s=service, b=before: recovered(crash_stack, s, b),
                    attempts=300,
                    pause=0.2,
                    what=f"the engine to restart {service} and see it healthy",
                )
        else:
            crash_stack.up()
        floor = writers.count()
        wait_for(lambda f=floor: writers.count() >= f + ACKS_AFTER_RESTART,
                 attempts=300, pause=0.1, what="writes after the restart")  # fmt: skip
        writers.join()
        assert crash_stack.sql("PRAGMA integrity_check;") == "ok", f"cycle {cycle}"

    stored = all_note_titles(crash_stack)
    lost = {i: t for i, t in writers.acknowledged.items() if stored.get(i) != t}
    assert lost == {}, f"{len(lost)} acknowledged writes lost"
    assert kills >= CYCLES
    assert len(writers.acknowledged) >= CYCLES * (ACKS_BEFORE_KILL + ACKS_AFTER_RESTART)
    assert crash_stack.sql("PRAGMA integrity_check;") == "ok"
    print(
        f"\n{CYCLES} kill cycles ({kills} SIGKILLs), {len(writers.acknowledged)} acknowledged "
        f"writes, {writers.failures} failed attempts, 0 lost"
    )
