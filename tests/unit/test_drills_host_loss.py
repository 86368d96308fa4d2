"""The pure parts of the host-loss drill: the confirmed beat, the tally, the lost window,
the replica size."""

from __future__ import annotations

import json

from drills.host_loss import (
    Acknowledged,
    Tally,
    confirmed_at,
    directory_bytes,
    lost_window,
    tally,
)


def test_the_confirmed_sync_is_read_from_the_status_file() -> None:
    status = {"url": "sftp://r@h/p", "confirmed_at": 1764770000.25, "txid": 7, "error": None}
    assert confirmed_at(json.dumps(status)) == 1764770000.25


def test_no_confirmed_sync_yet_or_an_unreadable_file_is_none() -> None:
    assert confirmed_at(json.dumps({"url": "sftp://r@h/p", "confirmed_at": None})) is None
    assert confirmed_at("") is None
    assert confirmed_at("cat: /data/.app.db-replica.json: No such file") is None
    assert confirmed_at("[1, 2]") is None


def test_notes_before_the_sync_must_be_there_and_later_ones_are_only_counted() -> None:
    acknowledged = [Acknowledged(f"n {i}", at=100.0 + i) for i in range(6)]
    # The sync was asked for at 103.5: n 0..3 were acknowledged before it.
    found = ["n 0", "n 1", "n 3", "n 3", "n 4", "other"]
    assert tally(acknowledged, 103.5, found) == Tally(
        covered=4, lost=1, duplicated=1, after=2, after_kept=1
    )


def test_every_note_back_once_is_a_clean_tally() -> None:
    acknowledged = [Acknowledged(f"n {i}", at=float(i)) for i in range(3)]
    assert tally(acknowledged, 10.0, ["n 2", "n 1", "n 0"]) == Tally(3, 0, 0, 0, 0)


def test_a_note_acknowledged_exactly_as_the_sync_was_asked_for_is_not_covered() -> None:
    assert tally([Acknowledged("n", at=5.0)], 5.0, []) == Tally(0, 0, 0, 1, 0)


def test_the_lost_window_runs_from_the_oldest_missing_note_to_the_loss() -> None:
    acknowledged = [Acknowledged(f"n {i}", at=100.0 + i / 4) for i in range(8)]
    # Lost at 102.1: n 5 (101.25) and n 7 (101.75) are missing; n 6 came back.
    found = [f"n {i}" for i in (0, 1, 2, 3, 4, 6)]
    assert lost_window(acknowledged, found, lost_at=102.1) == (2, 850)


def test_nothing_missing_is_a_window_of_zero() -> None:
    acknowledged = [Acknowledged("n 0", at=1.0), Acknowledged("n 1", at=2.0)]
    assert lost_window(acknowledged, ["n 1", "n 0", "other"], lost_at=50.0) == (0, 0)
    assert lost_window([], [], lost_at=50.0) == (0, 0)


def test_the_replica_size_comes_from_du() -> None:
    assert directory_bytes("123456\t/srv/replica/hostloss\n") == 123456
    assert directory_bytes("du: cannot access '/srv/replica/hostloss'") is None
    assert directory_bytes("") is None
