"""Mixed API traffic to a stack while something happens to it (a redeploy, a rollback).

Each client, on a kept-alive connection of its own, creates a note (POST), reads it back
(GET) and edits it (PUT with its ETag), over and over. The record says how many requests
were sent and failed (any answer but the expected one, or none), the longest stretch
with no success at all, and every note whose creation was acknowledged, so a caller can
check that each of those is in the database exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

from harness.http import UNREACHABLE, Client, Response

CLIENTS = 4
PAUSE_S = 0.01  # between one client's rounds: steady, not a saturation test


@dataclass
class TrafficRecord:
    requests: int = 0
    failed: int = 0
    max_gap_ms: float = 0.0
    # When the longest gap ended (time.time()), to place it among what happened meanwhile.
    max_gap_ended_at: float = 0.0
    # Titles of the notes whose POST was answered 201: each is unique to its request.
    acknowledged: list[str] = field(default_factory=list)
    # What the failures were: "POST 502", "GET ConnectionResetError", ...
    failures: Counter[str] = field(default_factory=Counter)


class MixedTraffic:
    """`with MixedTraffic(port) as traffic:` runs the clients until the block ends."""

    def __init__(self, port: int, *, clients: int = CLIENTS, tag: str | None = None) -> None:
        self.port = port
        self.clients = clients
        self.tag = tag or uuid.uuid4().hex[:8]
        if not self.tag.isalnum():
            raise ValueError(f"traffic tag {self.tag!r} must be letters and digits only")
        self.record = TrafficRecord()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._last_success = 0.0
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> MixedTraffic:
        self._last_success = time.monotonic()
        self._threads = [
            threading.Thread(target=self._client, args=(number,), daemon=True)
            for number in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        with self._lock:
            gap = time.monotonic() - self._last_success
            self.record.max_gap_ms = max(self.record.max_gap_ms, 1000 * gap)

    def _note(self, ok: bool, what: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.record.requests += 1
            if ok:
                gap = 1000 * (now - self._last_success)
                if gap > self.record.max_gap_ms:
                    self.record.max_gap_ms = gap
                    self.record.max_gap_ended_at = time.time()
                self._last_success = now
            else:
                self.record.failed += 1
                self.record.failures[what] += 1

    def _client(self, number: int) -> None:
        client = Client(self.port, timeout=15)
        round_ = 0
        try:
            while not self._stop.is_set():
                round_ += 1
                title = f"traffic-{self.tag}-{number}-{round_}"
                self._round(client, title)
                time.sleep(PAUSE_S)
        finally:
            client.close()

    def _send(
        self,
        client: Client,
        method: str,
        path: str,
        payload: dict[str, str] | None,
        expected: int,
        headers: dict[str, str] | None = None,
    ) -> Response | None:
        """One request, counted; the answer when it is the expected one, else None."""
        try:
            answer = client.request(method, path, payload, headers=headers)
        except UNREACHABLE as exc:
            self._note(False, f"{method} {type(exc).__name__}")
            return None
        self._note(answer.status == expected, f"{method} {answer.status}")
        return answer if answer.status == expected else None

    def _round(self, client: Client, title: str) -> None:
        created = self._send(client, "POST", "/api/notes", {"title": title, "body": "steady"}, 201)
        if created is None:
            return
        with self._lock:
            self.record.acknowledged.append(title)
        path = f"/api/notes/{created.json()['id']}"
        read = self._send(client, "GET", path, None, 200)
        if read is None:
            return
        etag = read.headers.get("ETag") or read.headers.get("etag") or "*"
        edit = {"title": title, "body": "edited"}
        self._send(client, "PUT", path, edit, 200, headers={"If-Match": etag})

    def tally_sql(self) -> str:
        """SQL for the sqlite3 CLI: `title|count` of every note this traffic created."""
        pattern = f"traffic-{self.tag}-%"
        # The tag is letters and digits only (checked above): nothing to escape.
        return f"SELECT title, count(*) FROM notes WHERE title LIKE '{pattern}' GROUP BY title"  # noqa: S608

    def lost_or_doubled(self, tally: str) -> list[str]:
        """From tally_sql()'s output: each acknowledged note not stored exactly once, and
        any stored more than once."""
        counts = {
            title: int(count)
            for title, count in (row.rsplit("|", 1) for row in tally.splitlines() if row)
        }
        wrong = [title for title in self.record.acknowledged if counts.get(title) != 1]
        return wrong + [title for title, n in counts.items() if n > 1 and title not in wrong]
