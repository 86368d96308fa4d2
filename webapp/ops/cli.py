"""`python -m webapp db ...`: the database verbs that operators, compose and CI run.

Every failure is one line on stderr and a non-zero exit: 1 for an operational failure,
2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from alembic.util import CommandError as AlembicError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from webapp import settings
from webapp.db import schema
from webapp.db.engine import BUSY_TIMEOUT_MS, make_engine, reader
from webapp.ops import backup, jsonlog, readiness, replica, replica_serve

log = logging.getLogger(__name__)

MIGRATION_BUSY_TIMEOUT_MS = 30_000
# How often `db serve --ready-file` re-checks the database. The healthcheck only reads the
# file (no Python start per check), and calls it stale after three missed beats.
HEARTBEAT_S = 5.0


class CommandError(Exception):
    """The command could not do its job; str() is the one-line reason."""


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number > 0 or number != number or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return number


def _message(value: str) -> str:
    if not any(char.isalnum() for char in value):
        raise argparse.ArgumentTypeError(f"{value!r} says nothing; say what the revision changes")
    return value.strip()


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure of these commands."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"webapp: {self.prog}: {message}; see `{self.prog} --help`\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="python -m webapp", description=__doc__)
    groups = top.add_subparsers(
        dest="group", required=True, metavar="db", parser_class=OneLineParser
    )
    dbp = groups.add_parser("db", help="database operations (DATABASE_URL names the file)")
    verbs = dbp.add_subparsers(dest="verb", required=True, parser_class=OneLineParser)
    verbs.add_parser("upgrade", help="migrate to the head revision; safe to repeat")
    verbs.add_parser("current", help="print the database's revision, or 'none'")
    verbs.add_parser("head", help="print the revision this code expects")
    verbs.add_parser("check", help="exit 0 iff the database is reachable, writable, at head")
    p = verbs.add_parser("backup", help="verified online copy; prints the backup's path")
    p.add_argument("dest", type=Path, help="a file path, or a directory for a timestamped file")
    p = verbs.add_parser("restore", help="replace the database with a verified copy (app stopped)")
    p.add_argument("src", type=Path, help="a backup file made by `db backup`")
    p = verbs.add_parser("revision", help="write a new migration after head (in a checkout)")
    p.add_argument("-m", "--message", type=_message, required=True, help="what it changes")
    p.add_argument(
        "--autogenerate",
        action="store_true",
        help="fill it with what the models have and the database (at head) lacks",
    )
    p = verbs.add_parser("serve", help="upgrade, then back up every interval until stopped")
    p.add_argument("--backup-dir", type=Path, required=True)
    p.add_argument("--backup-interval", type=_positive, required=True, metavar="SECONDS")
    p.add_argument("--keep", type=_count, required=True, metavar="N")
    p.add_argument(
        "--ready-file",
        type=Path,
        help=f"write the epoch seconds here every {HEARTBEAT_S:g} s while `db check` passes",
    )
    p = verbs.add_parser("replica", help="the off-host replica (REPLICA_URL) and its lag")
    p.add_argument(
        "action",
        choices=["status", "verify", "restore"],
        help="status: lag and last verified restore (JSON); verify: test-restore it now; "
        "restore: replace the database with it (app stopped)",
    )
    p.add_argument("--at", metavar="TIME", help="restore: the state at an ISO-8601 time (UTC)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = settings.load_for_cli()
    except settings.ConfigError as exc:
        print(f"webapp: configuration error: {exc}", file=sys.stderr)
        return 2
    jsonlog.configure(config.log_level)
    # A migration may wait its turn behind the app's writers; a healthcheck must answer
    # well within its own timeout.
    busy_ms = BUSY_TIMEOUT_MS if args.verb == "check" else MIGRATION_BUSY_TIMEOUT_MS
    engine = make_engine(config.database_url, busy_timeout_ms=busy_ms)
    try:
        return COMMANDS[args.verb](args, config, engine)
    except settings.ConfigError as exc:
        print(f"webapp: configuration error: {exc}", file=sys.stderr)
        return 2
    except (CommandError, backup.BackupError, replica.ReplicaError, AlembicError) as exc:
        print(f"webapp: db {args.verb}: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        print(
            f"webapp: db {args.verb}: database {config.database_path} failed: {reason}",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()


def _upgrade(engine: Engine, config: settings.Settings) -> tuple[str | None, str]:
    directory = config.database_path.parent
    if not directory.is_dir():
        raise CommandError(f"database directory {directory} does not exist; create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        # SQLite would only say "unable to open database file".
        raise CommandError(
            f"database directory {directory} is not writable by uid {os.getuid()}; "
            "fix its owner or mode (SQLite writes its -wal and -shm files beside the database)"
        )
    return schema.upgrade(engine)


def cmd_upgrade(_args: argparse.Namespace, config: settings.Settings, engine: Engine) -> int:
    before, after = _upgrade(engine, config)
    if schema.is_newer(after):
        print(
            f"database {config.database_path} is at {after}, newer than this release's "
            f"{schema.head()}: left as it is"
        )
    elif before == after:
        print(f"database {config.database_path} already at {after}")
    else:
        print(f"database {config.database_path} upgraded from {before or 'none'} to {after}")
    return 0


def cmd_current(_args: argparse.Namespace, config: settings.Settings, engine: Engine) -> int:
    if not config.database_path.is_file():
        raise CommandError(f"database file {config.database_path} does not exist")
    with reader(engine).connect() as conn:
        print(schema.current(conn) or "none")
    return 0


def cmd_head(_args: argparse.Namespace, _config: settings.Settings, _engine: Engine) -> int:
    print(schema.head())
    return 0


def cmd_revision(args: argparse.Namespace, config: settings.Settings, engine: Engine) -> int:
    if args.autogenerate and not config.database_path.is_file():
        raise CommandError(
            f"database file {config.database_path} does not exist; --autogenerate compares the "
            "models with a database at head: run `python -m webapp db upgrade` first"
        )
    try:
        script = schema.revision(
            args.message, autogenerate_from=engine if args.autogenerate else None
        )
    except OSError as exc:
        raise CommandError(
            f"cannot write the new revision to {exc.filename} ({exc.strerror}); "
            "run this in a source checkout, where webapp/db/migrations is writable"
        ) from None
    print(f"revision {script.revision} (after {script.down_revision}) written to {script.path}")
    return 0


def cmd_check(_args: argparse.Namespace, _config: settings.Settings, engine: Engine) -> int:
    reason = readiness.problem(engine)
    if reason is not None:
        raise CommandError(reason)
    print("ok")
    return 0


def cmd_backup(args: argparse.Namespace, config: settings.Settings, _engine: Engine) -> int:
    print(backup.backup(config.database_path, args.dest))
    return 0


def cmd_restore(args: argparse.Namespace, config: settings.Settings, _engine: Engine) -> int:
    backup.restore(args.src, config.database_path)
    print(f"database {config.database_path} restored from {args.src}")
    return 0


def _writable_directory(directory: Path) -> None:
    """Fail now, not at the first backup an interval later, if DIR cannot take files."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CommandError(
            f"backup directory {directory} is not usable ({exc.strerror}); "
            "mount a writable volume there or pass another --backup-dir"
        ) from None


def cmd_serve(args: argparse.Namespace, config: settings.Settings, engine: Engine) -> int:
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if args.ready_file is not None:
        # A restarted container keeps its /tmp in dev: never let a beat from before count.
        args.ready_file.unlink(missing_ok=True)
    replica_settings = replica.load()
    if replica_settings is not None:
        # Before the migration: a new server restores its database from the replica.
        prepared = replica_serve.prepare(replica_settings, config.database_path)
    before, after = _upgrade(engine, config)
    engine.dispose()  # the loop below uses the backup API, not the pool
    _writable_directory(args.backup_dir)
    stale = backup.remove_stale_partials(args.backup_dir)
    if config.sqlite_warning is not None:
        log.warning(config.sqlite_warning, extra={"event": "sqlite_below_floor"})
    if schema.is_newer(after):
        log.warning(
            f"the database is at revision {after}, newer than this release's {schema.head()}: "
            "served as it is while it has every column this release maps",
            extra={"event": "schema_newer"},
        )
    log.info(
        "serving",
        extra={
            "event": "serve",
            "database": str(config.database_path),
            "schema_before": before,
            "schema_revision": after,
            "backup_dir": str(args.backup_dir),
            "interval_s": args.backup_interval,
            "keep": args.keep,
            "stale_partials_removed": [p.name for p in stale],
            "replica": replica_settings.url if replica_settings else None,
            "replica_start": prepared if replica_settings else None,
        },
    )
    if replica_settings is None:
        log.warning(
            "REPLICA_URL is empty: the database lives on this disk only",
            extra={"event": "replica", "ok": False},
        )
    replicator = None
    if replica_settings is not None:
        replicator = replica_serve.Replicator(replica_settings, config.database_path)
        replicator.start()
    # The heartbeat checks with the healthcheck's short busy timeout, not the migration's.
    checker = make_engine(config.database_url, busy_timeout_ms=BUSY_TIMEOUT_MS)
    next_backup = time.monotonic() + args.backup_interval
    try:
        while True:
            if replicator is not None:
                replicator.beat()
            if args.ready_file is not None:
                _heartbeat(checker, args.ready_file, replica_settings, config.database_path)
            beating = args.ready_file is not None or replicator is not None
            tick = HEARTBEAT_S if beating else args.backup_interval
            if stop.wait(max(0.0, min(tick, next_backup - time.monotonic()))):
                break
            if time.monotonic() >= next_backup:
                next_backup = time.monotonic() + args.backup_interval
                _scheduled_backup(config.database_path, args.backup_dir, args.keep)
    finally:
        checker.dispose()
        if replicator is not None:
            replicator.stop()
        if args.ready_file is not None:
            args.ready_file.unlink(missing_ok=True)
    return 0


def _heartbeat(
    engine: Engine,
    ready_file: Path,
    replica_settings: replica.ReplicaSettings | None = None,
    database: Path | None = None,
) -> None:
    """Refresh READY_FILE while the database is ready and its replica current enough;
    when not, remove it and write the reason beside it (READY_FILE.why), which the
    healthcheck prints, so a deploy that waits on this service can name it."""
    reason = readiness.problem(engine)
    engine.dispose()  # no connection held between beats: restore and backup stay free
    if reason is None and replica_settings is not None and database is not None:
        status = replica.read_status(database)
        reason = replica.problem(replica_settings, status, time.time())
    why = ready_file.with_name(ready_file.name + ".why")
    if reason is None:
        try:
            _replace(ready_file, f"{int(time.time())}\n")
        except OSError as exc:
            raise CommandError(
                f"ready file {ready_file} cannot be written ({exc.strerror}); "
                "pass a --ready-file on a writable path such as /tmp"
            ) from None
        why.unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):  # the reason is a courtesy; the log has it too
        _replace(why, f"{reason}\n")
    if ready_file.exists():
        ready_file.unlink(missing_ok=True)
        log.error("not ready: %s", reason, extra={"event": "ready", "ok": False})


def _replace(path: Path, text: str) -> None:
    """Write PATH whole: the healthcheck never reads a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _scheduled_backup(database: Path, directory: Path, keep: int) -> None:
    try:
        path = backup.backup(database, directory)
        size = path.stat().st_size
        pruned = backup.prune(directory, keep)
    except backup.BackupError as exc:
        # Keep going: the next interval may succeed (e.g. after space is freed).
        log.error("backup failed: %s", exc, extra={"event": "backup", "ok": False})
        return
    log.info(
        "backup done",
        extra={
            "event": "backup",
            "ok": True,
            "path": str(path),
            "bytes": size,
            "pruned": [p.name for p in pruned],
        },
    )


def cmd_replica(args: argparse.Namespace, config: settings.Settings, _engine: Engine) -> int:
    replica_settings = replica.load()
    if replica_settings is None:
        raise CommandError("REPLICA_URL is empty: this database has no replica")
    database = config.database_path
    if args.at is not None and args.action != "restore":
        raise CommandError("--at applies to `db replica restore` only")
    if args.action == "status":
        print(json.dumps(replica.details(replica_settings, database, time.time()), indent=2))
        return 0
    if args.action == "verify":
        verified = replica.verify(replica_settings, database)
        if not verified.ok:
            raise CommandError(f"the replica at {replica_settings.url} fails: {verified.problem}")
        print(
            f"replica {replica_settings.url} verified: {verified.bytes} bytes restored and "
            f"checked in {verified.seconds:.1f} s"
        )
        return 0
    partial = database.with_name(f".{database.name}.restoring")
    partial.unlink(missing_ok=True)
    try:
        replica.restore(replica_settings, database, partial, at=args.at)
        problem = replica.verify_file(partial)
        if problem is not None:
            raise CommandError(
                f"the replica at {replica_settings.url} restores unsound: {problem}"
            )
        backup.restore(partial, database)
        replica.adopt_restored(database)
    finally:
        partial.unlink(missing_ok=True)
    when = f" as of {args.at}" if args.at else ""
    print(f"database {database} restored from {replica_settings.url}{when}")
    return 0


COMMANDS = {
    "upgrade": cmd_upgrade,
    "current": cmd_current,
    "head": cmd_head,
    "check": cmd_check,
    "revision": cmd_revision,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "serve": cmd_serve,
    "replica": cmd_replica,
}
