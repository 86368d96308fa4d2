"""The writers drill's audit: which acknowledged updates a note no longer holds."""

from __future__ import annotations

from drills.writers import Ack, lost_updates


def test_a_clean_history_loses_nothing():
    acks = [Ack("a", 2, 1), Ack("b", 3, 2), Ack("c", 4, 3)]
    assert lost_updates(acks, final_version=4, final_body="c") == 0


def test_two_acks_for_one_version_is_an_overwrite():
    acks = [Ack("a", 2, 1), Ack("b", 2, 1), Ack("c", 3, 2)]
    assert lost_updates(acks, final_version=3, final_body="c") == 1


def test_a_final_body_that_is_not_the_last_ack_is_a_loss():
    acks = [Ack("a", 2, 1), Ack("b", 3, 2)]
    assert lost_updates(acks, final_version=3, final_body="a") == 1


def test_versions_the_note_never_reached_are_losses():
    acks = [Ack("a", 2, 1), Ack("b", 3, 2)]
    assert lost_updates(acks, final_version=2, final_body="a") == 1
    assert lost_updates([Ack("x", 1, 0)], final_version=1, final_body="") == 1


def test_a_later_unacknowledged_write_is_not_a_loss():
    assert lost_updates([Ack("a", 2, 1)], final_version=3, final_body="other") == 0
    assert lost_updates([], final_version=1, final_body="") == 0


def test_an_update_that_skipped_versions_it_never_read_is_a_loss():
    # Both clients read version 2; a server ignoring If-Match accepts both.
    acks = [Ack("a", 3, 2), Ack("b", 4, 2)]
    assert lost_updates(acks, final_version=4, final_body="b") == 1
