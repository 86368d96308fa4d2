"""Online backups and restores of the SQLite file.

A backup uses SQLite's backup API in one step, which reads a single consistent snapshot
while the app keeps writing (WAL lets readers and the writer run side by side). Every
copy is checked with PRAGMA integrity_check before it gets its final name, so a file
named app-*.db in the backup directory is always complete and sound.
"""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

BACKUP_NAME = re.compile(r"app-(\d{8}T\d{6}Z)(?:-(\d+))?\.db")


class BackupError(Exception):
    """A backup or restore could not be done; str() is the one-line reason."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())


def integrity(path: Path) -> str:
    """'ok', or what integrity_check (or opening the file) reports."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    result = "; ".join(str(row[0]) for row in rows[:5])
    return result or "integrity_check returned nothing"


def target_path(dest: Path, now: datetime | None = None) -> Path:
    """DEST itself, or a new timestamped file inside DEST when it is a directory."""
    if not dest.is_dir():
        if not dest.parent.is_dir():
            raise BackupError(f"backup destination directory {dest.parent} does not exist")
        return dest
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    # Backups within one second keep both, and a later one always sorts after the
    # earlier ones (even when pruning removed those), so it is never the one pruned.
    counters = [
        int(match.group(2) or 0)
        for path in dest.glob(f"app-{stamp}*.db")
        if (match := BACKUP_NAME.fullmatch(path.name))
    ]
    if not counters:
        target = dest / f"app-{stamp}.db"
    else:
        target = dest / f"app-{stamp}-{max(counters) + 1}.db"
    return target


def backup(database: Path, dest: Path, *, now: datetime | None = None) -> Path:
    """Copy the live database to DEST, verify the copy, and return its path."""
    if not database.is_file():
        raise BackupError(f"database file {database} does not exist; nothing to back up")
    target = target_path(dest, now)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        source = sqlite3.connect(database, timeout=30)
        try:
            copy = sqlite3.connect(partial)
            try:
                source.backup(copy)  # pages=-1: one step, one snapshot
                # A self-contained file: no -wal sidecar to lose when copying it around.
                copy.execute("PRAGMA journal_mode = DELETE")
            finally:
                copy.close()
        finally:
            source.close()
        verdict = integrity(partial)
        if verdict != "ok":
            raise BackupError(f"backup copy {partial} failed integrity_check: {verdict}")
        _fsync_file(partial)
        os.replace(partial, target)
        _fsync_dir(target.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {database} to {target} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"backup of {database} to {target} failed: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


PARTIAL_NAME = re.compile(r"\.app-.*\.db\.partial-(\d+)")


def remove_stale_partials(directory: Path) -> list[Path]:
    """Delete half-written copies left by a backup process that was killed mid-copy."""
    removed = []
    for path in directory.iterdir():
        match = PARTIAL_NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            removed.append(path)
        except PermissionError:
            pass  # alive, under another user: not ours to touch
        # No error: a running process (perhaps a manual `db backup`) owns the file.
    return removed


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in `directory`; return what went."""
    found = []
    for path in directory.iterdir():
        if match := BACKUP_NAME.fullmatch(path.name):
            # Oldest first: by time stamp, then by the counter of same-second backups.
            found.append((match.group(1), int(match.group(2) or 0), path))
    backups = [path for _stamp, _counter, path in sorted(found)]
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def restore(source: Path, database: Path) -> None:
    """Replace the database with a verified copy of SOURCE, atomically.

    Stop the app first: a process that keeps the old file open keeps seeing it.
    """
    if not source.is_file():
        raise BackupError(f"restore source {source} does not exist or is not a file")
    verdict = integrity(source)
    if verdict != "ok":
        raise BackupError(f"restore source {source} is not a sound SQLite database: {verdict}")
    if not database.parent.is_dir():
        raise BackupError(f"database directory {database.parent} does not exist")
    partial = database.with_name(f".{database.name}.restore-{os.getpid()}")
    try:
        with source.open("rb") as src, partial.open("wb") as dst:
            while chunk := src.read(1024 * 1024):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        # The old file's WAL and shared memory describe the old file; left beside the
        # new one, SQLite would replay them into it.
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        os.replace(partial, database)
        _fsync_dir(database.parent)
    except OSError as exc:
        raise BackupError(f"restore of {source} to {database} failed: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
