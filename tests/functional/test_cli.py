"""`python -m webapp db ...`: in-process for coverage, as real processes for exit codes,
output and signals."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from webapp.db import schema
from webapp.ops import backup, cli

from .conftest import count_notes, insert_notes, migrated_engine, tmpfs


@pytest.fixture
def database(tmp_path, monkeypatch) -> Path:
    path: Path = tmp_path / "data" / "app.db"
    path.parent.mkdir()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    return path


def run(*args: str) -> int:
    return cli.main(list(args))


def test_upgrade_is_idempotent_and_current_and_head_agree(database, capsys):
    assert run("db", "current") == 1
    assert "does not exist" in capsys.readouterr().err
    assert run("db", "upgrade") == 0
    assert "upgraded from none to" in capsys.readouterr().out
    assert run("db", "upgrade") == 0
    assert "already at" in capsys.readouterr().out
    assert run("db", "current") == 0
    current = capsys.readouterr().out.strip()
    assert run("db", "head") == 0
    assert capsys.readouterr().out.strip() == current == schema.head()


def test_current_is_none_before_migrations(database, capsys):
    sqlite3.connect(database).close()
    assert run("db", "current") == 0
    assert capsys.readouterr().out.strip() == "none"


def test_upgrade_leaves_a_newer_revision_as_it_is_and_check_accepts_it(database, capsys):
    assert run("db", "upgrade") == 0
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE notes ADD COLUMN colour TEXT")
        conn.execute("UPDATE alembic_version SET version_num = 'later0099'")
    conn.close()
    capsys.readouterr()
    assert run("db", "upgrade") == 0
    assert "is at later0099, newer than this release's" in capsys.readouterr().out
    assert run("db", "current") == 0
    assert capsys.readouterr().out.strip() == "later0099"
    assert run("db", "check") == 0


def test_upgrade_into_a_missing_directory_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/nope/app.db")
    assert run("db", "upgrade") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_check_passes_only_when_ready(database, capsys):
    assert run("db", "check") == 1
    assert "run `python -m webapp db upgrade`" in capsys.readouterr().err
    sqlite3.connect(database).close()
    assert run("db", "check") == 1
    assert "schema revision none" in capsys.readouterr().err
    run("db", "upgrade")
    capsys.readouterr()
    assert run("db", "check") == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_check_fails_while_a_writer_holds_the_lock_too_long(database, capsys, monkeypatch):
    run("db", "upgrade")
    monkeypatch.setattr("webapp.ops.cli.BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert run("db", "check") == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in capsys.readouterr().err


def test_config_errors_exit_2_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "mysql://x/y")
    assert run("db", "upgrade") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DATABASE_URL" in err


def test_backup_to_directory_and_file_then_restore(database, tmp_path, capsys):
    run("db", "upgrade")
    insert_notes(database, 5)
    backups = tmp_path / "backups"
    backups.mkdir()
    capsys.readouterr()
    assert run("db", "backup", str(backups)) == 0
    made = Path(capsys.readouterr().out.strip())
    assert made.parent == backups and made.name.startswith("app-") and made.suffix == ".db"
    assert run("db", "backup", str(backups)) == 0  # same second: a second, distinct file
    second = Path(capsys.readouterr().out.strip())
    assert second != made and second.exists()
    named = tmp_path / "named.db"
    assert run("db", "backup", str(named)) == 0
    assert Path(capsys.readouterr().out.strip()) == named
    assert not list(backups.glob(".*"))  # no partial files left behind
    assert sqlite3.connect(made).execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    insert_notes(database, 3)
    assert count_notes(database) == 8
    assert run("db", "restore", str(made)) == 0
    assert count_notes(database) == 5
    assert run("db", "check") == 0


def test_restore_refuses_missing_and_corrupt_sources(database, tmp_path, capsys):
    run("db", "upgrade")
    insert_notes(database, 2)
    capsys.readouterr()
    assert run("db", "restore", str(tmp_path / "missing.db")) == 1
    assert "does not exist" in capsys.readouterr().err
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    assert run("db", "restore", str(garbage)) == 1
    assert "not a sound SQLite database" in capsys.readouterr().err
    good = tmp_path / "good.db"
    run("db", "backup", str(good))
    corrupt = tmp_path / "corrupt.db"
    data = bytearray(good.read_bytes())
    data[4096:] = b"\xde\xad" * ((len(data) - 4096) // 2)  # smash every page but the header
    corrupt.write_bytes(bytes(data))
    capsys.readouterr()
    assert run("db", "restore", str(corrupt)) == 1
    assert "corrupt" in capsys.readouterr().err
    assert count_notes(database) == 2  # the live database was never touched


def test_backup_errors_are_one_line(database, tmp_path, capsys):
    assert run("db", "backup", str(tmp_path)) == 1
    assert "does not exist; nothing to back up" in capsys.readouterr().err
    run("db", "upgrade")
    capsys.readouterr()
    assert run("db", "backup", str(tmp_path / "no" / "dir" / "x.db")) == 1
    assert "destination directory" in capsys.readouterr().err


def test_backup_while_writing_is_consistent(database, tmp_path):
    engine = migrated_engine(database)
    engine.dispose()
    stop = threading.Event()
    written = []

    def writer():
        conn = sqlite3.connect(database, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        for i in range(5000):  # bounded
            if stop.is_set():
                break
            with conn:
                conn.execute(
                    "INSERT INTO notes (title, body, tags, created_at, updated_at, version) "
                    "VALUES (?, 'body words', '[]', '2026-01-01', '2026-01-01', 1)",
                    (f"w{i}",),
                )
            written.append(i)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    copies = []
    try:
        while len(written) < 50 and thread.is_alive():
            time.sleep(0.01)
        for n in range(3):
            copies.append(backup.backup(database, tmp_path / f"copy{n}.db"))
    finally:
        stop.set()
        thread.join()
    counts = []
    for copy in copies:
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The full-text index agrees with the rows it indexes: one snapshot, not a blend.
        conn.execute("INSERT INTO notes_fts(notes_fts) VALUES ('integrity-check')")
        counts.append(conn.execute("SELECT count(*) FROM notes").fetchone()[0])
        conn.close()
    assert counts == sorted(counts) and counts[-1] <= len(written)


def test_serve_backs_up_prunes_and_stops_on_sigterm(database, tmp_path, capsys):
    backups = tmp_path / "backups"
    backups.mkdir()
    # A copy half-written by a backup process that was killed, and one still being written.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = backups / f".app-20260101T000000Z.db.partial-{dead.pid}"
    stale.write_bytes(b"half")
    live = backups / f".app-20260101T000000Z.db.partial-{os.getpid()}"
    live.write_bytes(b"in progress")
    done = threading.Event()

    def stop_after_three_backups():
        seen: set[str] = set()
        deadline = time.monotonic() + 30  # bounded wait
        while len(seen) < 3 and time.monotonic() < deadline and not done.is_set():
            seen |= {p.name for p in backups.glob("app-*.db")}
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_three_backups)
    stopper.start()
    try:
        code = run(
            "db", "serve", "--backup-dir", str(backups), "--backup-interval", "0.2", "--keep", "2"
        )
    finally:
        done.set()
        stopper.join()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == 0
    assert not stale.exists() and live.exists()
    live.unlink()
    made = sorted(p.name for p in backups.iterdir())
    assert len(made) == 2 and all(name.startswith("app-") for name in made)
    log = capsys.readouterr().err
    assert '"event": "backup"' in log and '"pruned": ["app-' in log


@pytest.mark.parametrize(
    "args",
    [
        ["--backup-interval", "0", "--keep", "1"],
        ["--backup-interval", "nan", "--keep", "1"],
        ["--backup-interval", "1", "--keep", "0"],
        ["--backup-interval", "x", "--keep", "1"],
        ["--backup-interval", "", "--keep", "1"],
        ["--backup-interval", "1", "--keep", ""],
    ],
)
def test_serve_rejects_bad_arguments_in_one_line(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        run("db", "serve", "--backup-dir", str(tmp_path), *args)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("webapp: python -m webapp db serve: ")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["db"],
        ["db", "bogus"],
        ["db", "backup"],
        ["other"],
        ["db", "revision"],
        ["db", "revision", "--autogenerate"],
        ["db", "revision", "-m"],
        ["db", "revision", "-m", " ?! "],
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        run(*argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--help" in err


def _webapp(*args: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "webapp", *args],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_real_process_serve_exits_0_promptly_on_sigterm(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/app.db"}
    backups = tmp_path / "backups"
    proc = _webapp(
        "db", "serve", "--backup-dir", str(backups), "--backup-interval", "0.3", "--keep", "3",
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        seen: set[str] = set()
        # Wait (bounded) until a fourth backup has been made, so one was pruned.
        while time.monotonic() < deadline and len(seen) < 4 and proc.poll() is None:
            seen |= {p.name for p in backups.glob("app-*.db")}
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert len(list(backups.glob("app-*.db"))) == 3
    backup_lines = [line for line in err.splitlines() if '"event": "backup"' in line]
    assert len(backup_lines) >= 4


def test_real_process_errors_are_one_line_without_traceback(tmp_path):
    proc = _webapp("db", "check", env={"DATABASE_URL": f"sqlite:///{tmp_path}/none.db"})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    proc = _webapp("db", "upgrade", env={})
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip() == (
        "webapp: configuration error: DATABASE_URL is not set; "
        "set it to a SQLite file URL, e.g. sqlite:////data/app.db"
    )


def test_a_file_that_is_not_sqlite_fails_in_one_line(database, capsys):
    database.write_bytes(b"definitely not a database" * 200)
    assert run("db", "current") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "file is not a database" in err
    assert run("db", "check") == 1
    assert "not usable" in capsys.readouterr().err


def test_serve_refuses_an_unusable_backup_directory_at_once(database, tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code = run(
        "db", "serve", "--backup-dir", str(not_a_dir / "sub"), "--backup-interval", "60",
        "--keep", "1",
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "backup directory" in err and "not usable" in err
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_upgrade_into_a_read_only_directory_says_so(tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mountpoint:
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{mountpoint}/app.db")
        assert run("db", "upgrade") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not writable by uid" in err


def test_upgrade_waits_for_a_writer_instead_of_failing(database, capsys):
    run("db", "upgrade")
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.5, holder.execute, ("ROLLBACK",))
    releaser.start()
    try:
        # The lock is taken when the command starts and freed while it waits.
        assert run("db", "upgrade") == 0
    finally:
        releaser.join()
        holder.close()
    assert "already at" in capsys.readouterr().out


SHIPPED_MIGRATIONS = Path(str(resources.files("webapp.db").joinpath("migrations")))


def _copy_migrations(dest: Path, monkeypatch) -> Path:
    """The package's migrations copied aside: new revisions never land in the source tree."""
    schema.head()  # cached from the shipped migrations before the copy stands in for them
    shutil.copytree(SHIPPED_MIGRATIONS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(schema, "SCRIPT_LOCATION", str(dest))
    return dest / "versions"


def _revision_file(path: Path) -> tuple[dict[str, object], list[ast.stmt]]:
    """The module-level constants of a revision file, and its upgrade()'s statements."""
    tree = ast.parse(path.read_text())
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    upgrade = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade")
    return constants, upgrade.body


def test_revision_writes_the_next_revision_and_autogenerate_compares_with_the_database(
    database, tmp_path, monkeypatch, capsys
):
    versions = _copy_migrations(tmp_path / "migrations", monkeypatch)
    run("db", "upgrade")
    capsys.readouterr()

    # At head, with models and migrations in step: nothing to do.
    assert run("db", "revision", "--autogenerate", "-m", "Nothing changed") == 0
    empty = versions / "0002_nothing_changed.py"
    assert capsys.readouterr().out == f"revision 0002 (after 0001) written to {empty}\n"
    constants, body = _revision_file(empty)
    assert constants["revision"] == "0002" and constants["down_revision"] == "0001"
    assert [type(stmt) for stmt in body] == [ast.Pass]
    assert run("db", "upgrade") == 0

    # A column the models lack: autogenerate reads this database, not some other one.
    with sqlite3.connect(database) as conn:
        conn.execute("ALTER TABLE notes ADD COLUMN colour TEXT")
    conn.close()
    assert run("db", "revision", "--autogenerate", "-m", "drop colour") == 0
    dropping = versions / "0003_drop_colour.py"
    constants, body = _revision_file(dropping)
    assert constants["down_revision"] == "0002"
    assert "batch_op.drop_column('colour')" in ast.unparse(ast.Module(body, type_ignores=[]))

    assert run("db", "revision", "-m", "by hand") == 0
    constants, body = _revision_file(versions / "0004_by_hand.py")
    assert constants["revision"] == "0004" and constants["down_revision"] == "0003"
    assert [type(stmt) for stmt in body] == [ast.Pass]

    # The written files are migrations Alembic runs.
    capsys.readouterr()
    assert run("db", "upgrade") == 0
    assert capsys.readouterr().out.endswith("upgraded from 0002 to 0004\n")
    conn = sqlite3.connect(database)
    assert "colour" not in {row[1] for row in conn.execute("PRAGMA table_info(notes)")}
    conn.close()
    assert sorted(p.name for p in (SHIPPED_MIGRATIONS / "versions").glob("*.py")) == [
        "0001_initial.py"
    ]


def test_revision_autogenerate_needs_a_database_at_head(database, tmp_path, monkeypatch, capsys):
    versions = _copy_migrations(tmp_path / "migrations", monkeypatch)
    assert run("db", "revision", "--autogenerate", "-m", "x") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `python -m webapp db upgrade` first" in err
    assert not database.exists()  # no empty database made by asking
    sqlite3.connect(database).close()
    assert run("db", "revision", "--autogenerate", "-m", "x") == 1
    assert capsys.readouterr().err == "webapp: db revision: Target database is not up to date.\n"
    assert sorted(p.name for p in versions.glob("*.py")) == ["0001_initial.py"]


def test_revision_into_a_read_only_package_says_so(database, tmp_path, monkeypatch, capsys):
    with tmpfs(tmp_path / "ro", "size=4m") as mountpoint:
        _copy_migrations(mountpoint / "migrations", monkeypatch)
        subprocess.run(["mount", "-o", "remount,ro", str(mountpoint)], check=True)
        assert run("db", "revision", "-m", "x") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("webapp: db revision: cannot write the new revision to ")
    assert "Read-only file system" in err and "source checkout" in err
