"""The image's SQLite: at or above the floor for Python and the CLI, and sound under the
stack's concurrency (several processes and threads writing, checkpoints and online
backups on one WAL database at once)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.commands import run
from harness.repo import ROOT
from webapp.sqlite_floor import FLOOR, parse

STRESS_SCRIPT = Path(__file__).with_name("wal_stress.py")
SECONDS, PROCESSES, THREADS = 20, 4, 2


def test_python_and_the_cli_run_an_sqlite_at_or_above_the_floor(
    build_record: dict[str, Any],
) -> None:
    result = run(
        ["docker", "run", "--rm", "--network", "none", build_record["image"],
         "sh", "-c", "python -m webapp.sqlite_floor && sqlite3 --version"],
    )  # fmt: skip
    report, cli = result.stdout.splitlines()[:2]
    library = report.split()[1]
    assert parse(library) >= FLOOR and parse(cli) >= FLOOR, result.stdout
    assert "Python 3.13." in report


def test_concurrent_writers_checkpoints_and_backups_leave_every_commit_intact(
    build_record: dict[str, Any],
) -> None:
    result = run(
        ["docker", "run", "--rm", "--network", "none",
         "-v", f"{STRESS_SCRIPT}:/tmp/wal_stress.py:ro", "--mount", "type=volume,dst=/data",
         build_record["image"],
         "python", "/tmp/wal_stress.py", "/data", str(SECONDS), str(PROCESSES), str(THREADS)],
        check=False,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # For the record (README): how much concurrency this run actually produced.
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "wal-stress.json").write_text(json.dumps(summary, indent=2) + "\n")
    assert summary["integrity_check"] == "ok"
    assert summary["missing"] == 0
    assert summary["writers"] == PROCESSES * THREADS
    assert all(count > 0 for count in summary["commits_by_writer"].values()), summary
    assert all(count > 0 for count in summary["checkpoints"].values()), summary
    assert summary["backups"]["taken"] > 0 and summary["backups"]["failed"] == 0
    assert result.returncode == 0, summary
