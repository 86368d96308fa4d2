"""The oldest SQLite the service may run on, and the checks that hold it there.

SQLite 3.7.0 to 3.51.2 have the WAL-reset bug (sqlite.org, wal.html#walresetbug): with two
or more connections writing or checkpointing one database at once, a checkpoint can write
a wrong WAL header and corrupt the file. That is this stack's normal state: Gunicorn's
workers and threads, plus the `sqlite` service's checks and backups. 3.51.3 fixed it.

`python -m webapp.sqlite_floor` is the image build's check: it fails the build with one
line when Python's `sqlite3` module or the `sqlite3` CLI is below the floor.
"""

from __future__ import annotations

import platform
import re
import shutil
import sqlite3
import subprocess
import sys

FLOOR = (3, 51, 3)
FLOOR_TEXT = ".".join(map(str, FLOOR))
REASON = "the WAL-reset corruption bug is fixed from 3.51.3 on"


def parse(version: str) -> tuple[int, ...]:
    """(3, 53, 4) from '3.53.4', '3.53.4-2' (a Debian version) or '3.53.4 2026-… …' (the CLI)."""
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if found is None:
        raise ValueError(f"{version!r} is not an SQLite version")
    return tuple(int(part or 0) for part in found.groups())


def below_floor(version: str) -> bool:
    return parse(version) < FLOOR


def library_version() -> str:
    """The version of the SQLite library Python's sqlite3 module is linked against."""
    return sqlite3.sqlite_version


def python_version() -> str:
    return platform.python_version()


def cli_version() -> str | None:
    """The `sqlite3` CLI's version, or None when the image has no CLI."""
    executable = shutil.which("sqlite3")
    if executable is None:
        return None
    result = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [executable, "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    return result.stdout.split()[0] if result.returncode == 0 and result.stdout else None


def problem(version: str) -> str | None:
    """The one-line reason a start-up refuses `version`, or None when it is new enough."""
    if not below_floor(version):
        return None
    return (
        f"SQLite {version} is below the floor {FLOOR_TEXT} ({REASON}); run the image "
        "built by `nox -s build`, or link Python against a newer libsqlite3"
    )


def main() -> int:
    library, cli = library_version(), cli_version()
    failures = [
        f"{what} is {found or 'missing'}"
        for what, found in (("Python's sqlite3 library", library), ("the sqlite3 CLI", cli))
        if found is None or below_floor(found)
    ]
    if failures:
        print(
            f"error: {' and '.join(failures)}; the floor is {FLOOR_TEXT} ({REASON}); "
            "check debs/ and requirements/sqlite.lock (`nox -s lock`)",
            file=sys.stderr,
        )
        return 1
    print(
        f"SQLite {library} (library), {cli} (CLI), Python {python_version()}: floor {FLOOR_TEXT}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
