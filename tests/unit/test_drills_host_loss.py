"""The pure parts of the host-loss drill: the confirmed sync, the tally, the replica size."""

from __future__ import annotations

import json

from drills.host_loss import Acknowledged, Tally, confirmed_at, directory_bytes, tally


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


def test_the_replica_size_comes_from_du() -> None:
    assert directory_bytes("123456\t/srv/replica/hostloss\n") == 123456
    assert directory_bytes("du: cannot access '/srv/replica/hostloss'") is None
    assert directory_bytes("") is None
