"""Writers queue for the SQLite write lock instead of polling for it.

SQLite lets one writer in at a time; the others retry inside its busy handler, which
sleeps 1, 2, 5, 10, 15, 20, 25, 50 and then 100 ms between attempts. A note insert
holds the lock for well under a millisecond, so under concurrent writes most of the
time went into those sleeps, and the lock sat free while every waiter slept.

The gate hands the turn over directly: a lock shared by a process's threads, then an
advisory lock on a file beside the database shared by every process that opens it.
It only orders writers that would otherwise wait on SQLite; SQLite's own lock still
guards the data. A writer that cannot get through the gate within the busy timeout
goes on to BEGIN IMMEDIATE anyway and so ends as it did before: busy, then a 503.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from typing import Any

from webapp.ops import metrics

# Between polls of another process's file lock: short, because a turn is short.
POLL_FIRST_S = 0.0002
POLL_MAX_S = 0.002

_GATES: weakref.WeakSet[WriteGate] = weakref.WeakSet()


class WriteGate:
    def __init__(self, database: str | None, timeout_s: float) -> None:
        # No file lock for in-memory or unnamed databases: no other process shares them.
        self.lock_path = f"{database}-writer.lock" if database and database != ":memory:" else None
        self.timeout_s = timeout_s
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._fd_pid = 0
        self._holder: Any = None
        _GATES.add(self)

    def forget_turn(self) -> None:
        """In a forked child: a turn taken by a parent's thread is not this process's."""
        self._threads = threading.Lock()
        self._holder = None

    def enter(self, holder: Any) -> None:
        """Wait for the turn on behalf of `holder` (a pool's connection record)."""
        if self._holder is holder:
            return  # a connection's next transaction: its turn lasts until check-in
        start = time.monotonic()
        deadline = start + self.timeout_s
        got_turn = self._threads.acquire(timeout=self.timeout_s)
        if got_turn and not self._lock_file(deadline):
            self._threads.release()
            got_turn = False
        metrics.record_gate_wait(time.monotonic() - start, got_turn=got_turn)
        if got_turn:
            self._holder = holder

    def leave(self, holder: Any) -> None:
        """End `holder`'s turn, if it has one."""
        if holder is None or self._holder is not holder:
            return
        self._holder = None
        if self._fd is not None and self._fd_pid == os.getpid():
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self, deadline: float) -> bool:
        fd = self._file()
        if fd is None:
            return True  # no shareable file: the thread lock is the whole gate
        pause = POLL_FIRST_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, POLL_MAX_S)

    def _file(self) -> int | None:
        if self.lock_path is None:
            return None
        if self._fd is None or self._fd_pid != os.getpid():
            # A descriptor inherited across fork shares its lock with the parent; each
            # process opens its own. A directory it cannot write leaves only SQLite's lock.
            try:
                self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self.lock_path = None
                return None
            self._fd_pid = os.getpid()
        return self._fd


def _after_fork_in_child() -> None:
    for gate in list(_GATES):
        gate.forget_turn()


os.register_at_fork(after_in_child=_after_fork_in_child)
