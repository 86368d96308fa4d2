"""Crashes under write load: writers that remember every acknowledged note, SIGKILLs from
the host, and the wait until the restart policy has brought the service back.

A write counts as acknowledged when the API answered 201 with the note. Shared by the
container crash test and the crash drill, which kill the same way and differ in how often
and when.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading

from harness.commands import docker
from harness.http import UNREACHABLE
from harness.stack import Stack, wait_for

WRITERS = 4
# Bounds: each writer stops after this many attempts in a cycle, whatever happens.
MAX_ATTEMPTS_PER_CYCLE = 3000
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
            except UNREACHABLE:
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
        docker("kill", "--signal", "KILL", state["Id"])
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


def kill_and_recover(stack: Stack, targets: tuple[str, ...]) -> None:
    """SIGKILL each service of `targets` at once, then wait (bounded) until it is back.

    From the host, a process that dies on its own is restarted by the engine
    (unless-stopped) and reports healthy again with no help; without root the kill is a
    deliberate stop to the engine, so the stack is brought back by `up`.
    """
    restarts = {service: crash(stack, service) for service in targets}
    if not CRASH_FROM_HOST:
        stack.up()
        return
    for service, before in restarts.items():
        wait_for(
            lambda s=service, b=before: recovered(stack, s, b),
            attempts=300,
            pause=0.2,
            what=f"the engine to restart {service} and see it healthy",
        )
