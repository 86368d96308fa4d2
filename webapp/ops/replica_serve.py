"""The replicator that `db serve` runs: one `litestream replicate` child per database.

Before the database is migrated, prepare() restores a missing database from the replica,
and refuses a database that this server never replicated when the replica already holds
one: replicating it would bury the replica's data under an empty or foreign database.
While serving, beat() asks the child to sync and waits until the remote holds the
current transaction; that confirmation is what the lag counts from. A replica that cannot
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

from webapp.ops import replica
from webapp.ops.replica import ReplicaError, ReplicaSettings, Status

log = logging.getLogger(__name__)

# A sync waits at most this long for the remote within one heartbeat.
SYNC_TIMEOUT_S = 4
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

    def start(self) -> None:
        document = replica.config(self.settings, self.database, self.socket, metrics=True)
        self.config.write_text(json.dumps(document, indent=2))
        self.config.chmod(0o600)
        # Its log goes to the service's stderr as it is: Litestream logs one line a event.
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and config
            [replica.binary(), "replicate", "-config", str(self.config)]
        )
        # Ready once its control socket listens; the first beat's sync needs it.
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

    def sync(self) -> None:
        """Ask the child to sync now and record whether the remote confirmed it."""
        asked = time.time()
        try:
            args = ["sync", "-wait", "-json", "-timeout", str(SYNC_TIMEOUT_S)]
            args += ["-socket", str(self.socket), str(self.database)]
            out = replica.run(args, timeout=SYNC_TIMEOUT_S + 5)
            result = json.loads(out)
            if result.get("replica_txid") != result.get("txid"):
                raise ReplicaError(
                    f"the remote holds txid {result.get('replica_txid')} of {result.get('txid')}"
                )
        except (ReplicaError, ValueError) as exc:
            self.status = replace(self.status, error=str(exc))
        else:
            self.status = replace(self.status, confirmed_at=asked, txid=result["txid"], error=None)

    def beat(self) -> None:
        """One heartbeat: sync, then a test restore when one is due; record both."""
        if self._process is not None and self._process.poll() is not None:
            raise ReplicaError(
                f"litestream replicate exited with status {self._process.returncode}; "
                "see its log lines above"
            )
        self.sync()
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
