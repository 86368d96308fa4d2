"""The replicator that `db serve` runs: one `litestream replicate` child per database.

Before the database is migrated, prepare() restores a missing database from the replica,
and refuses a database that this server never replicated when the replica already holds
one: replicating it would bury the replica's data under an empty or foreign database.
While serving, beat() notes where the WAL ends and waits until the remote holds a
capture that reaches it, without ever telling the child to sync (webapp.ops.wal_position
says why); that confirmation is what the lag counts from. A replica that cannot
be reached simply stops being confirmed, so its lag grows until the sqlite service's
heartbeat turns it unhealthy.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from webapp.ops import replica, wal_position
from webapp.ops.replica import ReplicaError, ReplicaSettings, Status

log = logging.getLogger(__name__)

# A beat waits at most this long for the remote within one heartbeat, looking at the
# local captures this often and listing the remote at most this often (its sync interval).
CONFIRM_TIMEOUT_S = 4
CONFIRM_POLL_S = 0.25
REMOTE_POLL_S = 1.0
# Beats whose WAL place is not confirmed yet, kept for later beats (a minute's worth).
PENDING_MAX = 12
STOP_TIMEOUT_S = 20
START_TIMEOUT_S = 10


def prepare(settings: ReplicaSettings, database: Path) -> str:
    """Make DATABASE safe to replicate; say what was done ('restored', 'new', 'kept')."""
    if not database.exists():
        if not replica.exists(settings, database):
            return "new"
        partial = database.with_name(f".{database.name}.restoring")
        partial.unlink(missing_ok=True)
        replica.restore(settings, database, partial)
        problem = replica.verify_file(partial)
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise ReplicaError(f"the replica at {settings.url} restores unsound: {problem}")
        partial.replace(database)
        replica.adopt_restored(database)
        log.info(
            "restored from the replica",
            extra={
                "event": "replica_restore",
                "url": settings.url,
                "bytes": database.stat().st_size,
            },
        )
        return "restored"
    ours = replica.state_dir(database).exists() or replica.restored_marker(database).exists()
    if not ours and replica.exists(settings, database):
        raise ReplicaError(
            f"database {database} was never replicated from here, but {settings.url} already "
            "holds a replica; move the database away to restore from the replica, or point "
            "REPLICA_URL at an empty location to replace it"
        )
    return "kept"


class Replicator:
    """The `litestream replicate` child process and the status it confirms."""

    def __init__(self, settings: ReplicaSettings, database: Path) -> None:
        self.settings = settings
        self.database = database
        self._directory = tempfile.TemporaryDirectory(prefix="webapp-replicator-")
        self.socket = Path(self._directory.name) / "litestream.sock"
        self.config = Path(self._directory.name) / "litestream.yml"
        self.status = Status(url=settings.url)
        self._process: subprocess.Popen[bytes] | None = None
        self._next_verify = time.monotonic() + settings.verify_interval_s
        self._pending: list[tuple[float, wal_position.WalPosition | None]] = []
        self._pages: int | None = None
        self._started_at = 0.0

    def start(self) -> None:
        document = replica.config(self.settings, self.database, self.socket, metrics=True)
        self.config.write_text(json.dumps(document, indent=2))
        self.config.chmod(0o600)
        # Its log goes to the service's stderr as it is: Litestream logs one line a event.
        self._started_at = time.time()
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and config
            [replica.binary(), "replicate", "-config", str(self.config)]
        )
        # Started once its control socket listens.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ReplicaError(
                    f"litestream replicate did not start within {START_TIMEOUT_S} s; "
                    "see its log lines above"
                )
            time.sleep(0.05)
        replica.write_status(self.database, self.status)
        log.info("replicating", extra={"event": "replicate", "url": self.settings.url})

    def confirm(self) -> None:
        """Record whether the remote holds every transaction committed before this beat
        began. Litestream is never told to sync (webapp.ops.wal_position says why): the
        beat notes where the WAL's last commit ends now and waits, up to CONFIRM_TIMEOUT_S,
        for a local capture that reaches that place and for the remote to list it. A
        place not reached yet stays pending, and a later beat confirms it when it is."""
        wal = self.database.with_name(self.database.name + "-wal")
        mark = (time.time(), wal_position.wal_end(wal, self._page_size()))
        self._pending = [*self._pending, mark][-PENDING_MAX:]
        ltx_dir = replica.state_dir(self.database) / "ltx" / "0"
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        remote, listed_at = -1, -REMOTE_POLL_S
        while True:
            reached = self._newest_reached(wal_position.captures(ltx_dir))
            if reached is None:
                reason = "litestream has not captured the WAL as it was at this beat yet"
            else:
                at, txid = reached
                if txid > remote and time.monotonic() - listed_at >= REMOTE_POLL_S:
                    try:
                        remote, listed_at = self._remote_txid(), time.monotonic()
                    except ReplicaError as exc:
                        self.status = replace(self.status, error=str(exc))
                        return
                if remote >= txid:
                    self._pending = [p for p in self._pending if p[0] > at]
                    self.status = replace(self.status, confirmed_at=at, txid=txid, error=None)
                    return
                reason = f"the remote holds txid {remote} of {txid}"
            if time.monotonic() > deadline:
                self.status = replace(self.status, error=reason)
                return
            time.sleep(CONFIRM_POLL_S)

    def _newest_reached(self, found: list[wal_position.Capture]) -> tuple[float, int] | None:
        """The newest pending beat that a local capture holds: its time and that TXID."""
        for at, position in reversed(self._pending):
            capture = wal_position.first_reaching(position, found, self._started_at)
            if capture is not None:
                return at, capture.txid
        return None

    def _page_size(self) -> int:
        if self._pages is None:
            self._pages = wal_position.page_size(self.database)
        return self._pages

    def _remote_txid(self) -> int:
        files = replica.transactions(self.settings, self.database)
        return max((int(f["max_txid"], 16) for f in files), default=0)

    def beat(self) -> None:
        """One heartbeat: confirm, then a test restore when one is due; record both."""
        if self._process is not None and self._process.poll() is not None:
            raise ReplicaError(
                f"litestream replicate exited with status {self._process.returncode}; "
                "see its log lines above"
            )
        self.confirm()
        if time.monotonic() >= self._next_verify:
            self.verify()
        replica.write_status(self.database, self.status)

    def verify(self) -> None:
        self._next_verify = time.monotonic() + self.settings.verify_interval_s
        verified = replica.verify(self.settings, self.database)
        self.status = replace(self.status, verified=verified)
        level = logging.INFO if verified.ok else logging.ERROR
        log.log(
            level,
            "replica verified" if verified.ok else f"replica verify failed: {verified.problem}",
            extra={
                "event": "replica_verify",
                "ok": verified.ok,
                "seconds": round(verified.seconds, 2),
                "bytes": verified.bytes,
            },
        )

    def stop(self) -> None:
        """SIGTERM the child, which flushes what is outstanding, and wait for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._directory.cleanup()
