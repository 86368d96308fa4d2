"""Run inside the image: many connections on one WAL database at once, then an audit.

Writer processes with several threads each commit numbered rows, while one process runs
checkpoints of every mode and another takes online backups with SQLite's backup API:
the concurrency of Gunicorn's workers and threads plus the `sqlite` service, and the
pattern the WAL-reset bug needs (a checkpoint completing, another starting, a commit
resetting the WAL meanwhile). Then the file must pass `integrity_check` and hold every
row a writer saw committed. Prints one JSON object; exits 0 only when the audit passes.

    python wal_stress.py DIRECTORY SECONDS PROCESSES THREADS
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import sys
import threading
import time
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def write(path: Path, writer: str, deadline: float, results: dict[str, int]) -> None:
    connection = connect(path)
    acknowledged = 0
    while time.monotonic() < deadline:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO rows (writer, seq, payload) VALUES (?, ?, randomblob(256))",
            (writer, acknowledged + 1),
        )
        connection.execute("COMMIT")
        # Only a COMMIT that returned counts as acknowledged, as for an API write.
        acknowledged += 1
    connection.close()
    results[writer] = acknowledged


def writer_process(path: Path, index: int, threads: int, deadline: float, queue) -> None:
    results: dict[str, int] = {}
    workers = [
        threading.Thread(target=write, args=(path, f"p{index}t{n}", deadline, results))
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(("writers", results))


def checkpoint_process(path: Path, deadline: float, queue) -> None:
    connection = connect(path)
    counts = {"PASSIVE": 0, "FULL": 0, "RESTART": 0, "TRUNCATE": 0}
    modes = list(counts)
    turn = 0
    while time.monotonic() < deadline:
        mode = modes[turn % len(modes)]
        busy, _, _ = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        counts[mode] += 0 if busy else 1
        turn += 1
        time.sleep(0.005)
    connection.close()
    queue.put(("checkpoints", counts))


def backup_process(path: Path, directory: Path, deadline: float, queue) -> None:
    source = connect(path)
    taken = failed = 0
    while time.monotonic() < deadline:
        target_path = directory / f"backup-{taken % 3}.db"
        target_path.unlink(missing_ok=True)
        target = sqlite3.connect(target_path)
        source.backup(target)
        verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
        target.close()
        taken += 1
        failed += verdict != "ok"
    source.close()
    queue.put(("backups", {"taken": taken, "failed": failed}))


def main() -> int:
    directory, seconds, processes, threads = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    path = directory / "stress.db"
    setup = connect(path)
    setup.execute("PRAGMA journal_mode = WAL")
    setup.execute(
        "CREATE TABLE rows (writer TEXT NOT NULL, seq INTEGER NOT NULL, payload BLOB,"
        " PRIMARY KEY (writer, seq))"
    )
    setup.close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    deadline = time.monotonic() + seconds
    children = [
        context.Process(target=writer_process, args=(path, index, threads, deadline, queue))
        for index in range(processes)
    ]
    children.append(context.Process(target=checkpoint_process, args=(path, deadline, queue)))
    children.append(
        context.Process(target=backup_process, args=(path, directory, deadline, queue))
    )
    for child in children:
        child.start()
    reports: dict[str, dict[str, int]] = {"writers": {}}
    for _ in children:
        kind, values = queue.get(timeout=seconds + 120)
        if kind == "writers":
            reports["writers"].update(values)
        else:
            reports[kind] = values
    for child in children:
        child.join()
    audit = connect(path)
    integrity = audit.execute("PRAGMA integrity_check").fetchone()[0]
    missing = 0
    for writer, acknowledged in reports["writers"].items():
        present = audit.execute(
            "SELECT count(*) FROM rows WHERE writer = ? AND seq <= ?", (writer, acknowledged)
        ).fetchone()[0]
        missing += acknowledged - present
    audit.close()
    summary = {
        "sqlite_version": sqlite3.sqlite_version,
        "python_version": sys.version.split()[0],
        "seconds": seconds,
        "writers": len(reports["writers"]),
        "commits": sum(reports["writers"].values()),
        "commits_by_writer": reports["writers"],
        "checkpoints": reports["checkpoints"],
        "backups": reports["backups"],
        "integrity_check": integrity,
        "missing": missing,
        "exit_codes": [child.exitcode for child in children],
    }
    print(json.dumps(summary))
    passed = integrity == "ok" and missing == 0 and reports["backups"]["failed"] == 0
    return 0 if passed and all(child.exitcode == 0 for child in children) else 1


if __name__ == "__main__":
    sys.exit(main())
