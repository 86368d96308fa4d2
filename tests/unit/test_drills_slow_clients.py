"""The slow-clients drill's arithmetic and the requests its slow connections send."""

from __future__ import annotations

import pytest

from drills import slow_clients


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [
        ([], 0.99, 0.0),
        ([7.0], 0.99, 7.0),
        ([float(n) for n in range(1, 101)], 0.99, 99.0),
        ([float(n) for n in range(1, 101)], 0.5, 50.0),
        ([5.0, 1.0, 3.0], 0.99, 5.0),
    ],
)
def test_nearest_rank_percentile(values, share, expected) -> None:
    assert slow_clients.percentile(values, share) == expected


def test_failed_requests_count_in_the_rate_and_the_p99() -> None:
    tally = slow_clients.Tally()
    for _ in range(98):
        tally.record(10.0, True)
    tally.record(5000.0, False)
    tally.record(5000.0, False, created=None)
    tally.record(12.0, True, created="42")
    assert tally.attempts == 101
    assert tally.success_rate == pytest.approx(99 / 101)
    assert tally.p99_ms == 5000.0
    assert tally.created == ["42"]


def test_no_requests_is_no_success() -> None:
    assert slow_clients.Tally().success_rate == 0.0


def test_talkers_never_end_their_headers_bodies_and_readers_do() -> None:
    talker = slow_clients.slow_request("talker")
    body = slow_clients.slow_request("body")
    reader = slow_clients.slow_request("reader")
    assert b"\r\n\r\n" not in talker and reader.endswith(b"\r\n\r\n")
    # Under Gunicorn's 100-field limit, so the server cannot cut a talker short.
    assert talker.count(b"\r\n") - 1 < 100
    assert talker.startswith(b"GET /?slow=") and b"Host: 127.0.0.1\r\n" in talker
    head, _, rest = body.partition(b"\r\n\r\n")
    assert body.startswith(b"POST /api/notes?slow=")
    assert f"Content-Length: {len(rest)}".encode() in head
    assert len(rest) == slow_clients.BODY_BYTES


def test_the_attack_opens_the_same_number_of_each_kind() -> None:
    slow = slow_clients.Slowloris(1, per_kind=3)
    kinds = [connection.kind for connection in slow.connections]
    assert kinds == ["talker"] * 3 + ["body"] * 3 + ["reader"] * 3
