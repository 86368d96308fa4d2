"""The SQLite floor: versions are read the same from the library, the CLI and Debian."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from webapp import sqlite_floor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.51.3", (3, 51, 3)),
        ("3.53.4-2", (3, 53, 4)),
        ("3.46.1-7+deb13u2", (3, 46, 1)),
        ("3.53.4 2026-05-01 12:00:00 abcdef (64-bit)", (3, 53, 4)),
        ("3.52", (3, 52, 0)),
    ],
)
def test_versions_parse_from_every_source(text: str, expected: tuple[int, ...]) -> None:
    assert sqlite_floor.parse(text) == expected


def test_a_version_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not an SQLite version"):
        sqlite_floor.parse("latest")


@pytest.mark.parametrize(
    ("version", "below"),
    [("3.40.1", True), ("3.46.1", True), ("3.51.2", True), ("3.51.3", False), ("3.53.4", False)],
)
def test_the_floor_is_the_wal_reset_fix(version: str, below: bool) -> None:
    assert sqlite_floor.below_floor(version) is below
    reason = sqlite_floor.problem(version)
    if below:
        assert reason is not None and f"SQLite {version} is below the floor 3.51.3" in reason
    else:
        assert reason is None


def test_the_build_check_reports_the_library_it_runs_on() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webapp.sqlite_floor"], capture_output=True, text=True, check=False
    )
    library_ok = not sqlite_floor.below_floor(sqlite3.sqlite_version)
    cli = sqlite_floor.cli_version()
    if library_ok and cli is not None and not sqlite_floor.below_floor(cli):
        assert result.returncode == 0, result.stderr
        assert f"SQLite {sqlite3.sqlite_version} (library)" in result.stdout
    else:
        # This machine's own SQLite may be older: the check must then fail in one line.
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "the floor is 3.51.3" in lines[0]
