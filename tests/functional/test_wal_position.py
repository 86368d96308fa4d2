"""Where a real SQLite WAL's last commit ends, and which of Litestream's captures holds it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from webapp.ops import wal_position
from webapp.ops.wal_position import Capture, WalPosition

PAGE = 4096
FRAME = wal_position.WAL_FRAME_HEADER_BYTES + PAGE


@pytest.fixture
def db(tmp_path) -> Path:
    path: Path = tmp_path / "app.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA page_size = {PAGE}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    connection.close()
    return path


def _writer(db: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA wal_autocheckpoint = 0")  # the test decides when
    return connection


def _wal(db: Path) -> Path:
    return db.with_name(db.name + "-wal")


def test_the_place_is_where_the_last_commit_ends(db):
    writer = _writer(db)
    for n in range(5):
        writer.execute("INSERT INTO t (v) VALUES (?)", (bytes(100 * n),))
    place = wal_position.wal_end(_wal(db), wal_position.page_size(db))
    assert place is not None
    assert place.end == _wal(db).stat().st_size
    assert (place.end - wal_position.WAL_HEADER_BYTES) % FRAME == 0
    # A transaction that spilled pages into the WAL but did not commit moves nothing.
    writer.execute("PRAGMA cache_size = 2")
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO t (v) VALUES (?)", [(bytes(3000),)] * 200)
    assert _wal(db).stat().st_size > place.end
    assert wal_position.wal_end(_wal(db), PAGE) == place
    writer.execute("COMMIT")
    committed = wal_position.wal_end(_wal(db), PAGE)
    assert committed is not None and committed.same_generation(place)
    assert committed.end > place.end
    writer.close()


def test_a_restarted_wal_ends_before_the_older_generations_frames(db):
    writer = _writer(db)
    writer.executemany("INSERT INTO t (v) VALUES (?)", [(bytes(3000),)] * 50)
    before = wal_position.wal_end(_wal(db), PAGE)
    assert before is not None
    writer.execute("PRAGMA wal_checkpoint(RESTART)")
    writer.execute("INSERT INTO t (v) VALUES (x'01')")
    after = wal_position.wal_end(_wal(db), PAGE)
    assert after is not None and not after.same_generation(before)
    assert after.salt1 == before.salt1 + 1  # SQLite's own count of restarts
    assert after.end < before.end <= _wal(db).stat().st_size
    writer.close()


def test_no_wal_or_no_commit_in_it_is_no_place(db, tmp_path):
    assert wal_position.wal_end(tmp_path / "absent-wal", PAGE) is None
    header_only = tmp_path / "header-wal"
    header_only.write_bytes(bytes(wal_position.WAL_HEADER_BYTES))
    assert wal_position.wal_end(header_only, PAGE) is None
    assert wal_position.page_size(db) == PAGE


def test_the_captures_are_read_from_ltx_headers_and_a_partial_file_is_skipped(tmp_path):
    header = wal_position._LTX_HEADER
    # magic, flags, page size, commit, min TXID, max TXID, timestamp, checksum,
    # WAL offset, WAL size, salts
    (tmp_path / "0000000000000001-0000000000000001.ltx").write_bytes(
        header.pack(b"LTX1", 0, PAGE, 2, 1, 1, 1_796_000_000_250, 0, 32, 2 * FRAME, 7, 9)
    )
    (tmp_path / "0000000000000002-0000000000000002.ltx").write_bytes(
        header.pack(b"LTX1", 0, PAGE, 2, 2, 2, 1_796_000_001_000, 0, 0, 0, 0, 0)
    )
    (tmp_path / "0000000000000003-0000000000000003.ltx").write_bytes(b"LTX1")
    assert wal_position.captures(tmp_path) == [
        Capture(1, WalPosition(7, 9, 32 + 2 * FRAME), 1_796_000_000.25),
        Capture(2, None, 1_796_000_001.0),
    ]


STARTED = 1_796_000_000.0  # when the replicator started Litestream


def test_a_capture_holds_a_place_it_reaches_or_follows_in_its_generation():
    place = WalPosition(5, 50, 1000)
    short = Capture(1, WalPosition(5, 50, 500), STARTED + 1)
    reaching = Capture(2, WalPosition(5, 50, 1000), STARTED + 2)
    unrelated = Capture(3, WalPosition(900, 60, 100), STARTED + 3)
    assert wal_position.first_reaching(place, [short], STARTED) is None
    assert wal_position.first_reaching(place, [short, reaching, unrelated], STARTED) == reaching
    # The WAL restarted after the place was captured in part: the next capture holds it.
    assert wal_position.first_reaching(place, [short, unrelated], STARTED) == unrelated
    # No WAL at the beat: everything was in the database file, which the newest holds.
    assert wal_position.first_reaching(None, [short, unrelated], STARTED) == unrelated
    assert wal_position.first_reaching(None, [], STARTED) is None


def test_a_wal_that_restarted_before_litestreams_first_capture_is_held_by_it():
    """Litestream starts after the app has written: SQLite may restart the WAL several
    times before Litestream's first capture, which reads the whole database file."""
    place = WalPosition(2**32 - 2, 50, 2_434_952)  # salt-1 wraps around, as SQLite's does
    first = Capture(1, WalPosition(1, 77, 2_204_232), STARTED + 1)
    assert wal_position.first_reaching(place, [first], STARTED) == first
    # Not from a capture written before this run, nor from a generation far away.
    stale = Capture(1, WalPosition(1, 77, 2_204_232), STARTED - 5)
    assert wal_position.first_reaching(place, [stale], STARTED) is None
    far = Capture(1, WalPosition(2**20, 77, 4152), STARTED + 1)
    assert wal_position.first_reaching(place, [far], STARTED) is None


def test_another_servers_capture_holds_nothing_of_this_wal():
    """After a restore, Litestream fetches the replica's newest file, written from the lost
    server's WAL before this server started it: its salts say nothing about this WAL."""
    place = WalPosition(100, 1, 4152)
    for foreign_salt in (99, 101, 2**31 + 100):
        fetched = Capture(7, WalPosition(foreign_salt, 2, 436752), STARTED - 60)
        assert wal_position.first_reaching(place, [fetched], STARTED) is None
        ours = Capture(8, WalPosition(100, 1, 4152), STARTED + 1)
        assert wal_position.first_reaching(place, [fetched, ours], STARTED) == ours
