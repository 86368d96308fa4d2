"""The fuzz drill's hand-made cases, chunked framing and its tally."""

from __future__ import annotations

from schemathesis.core.failures import Failure, FailureGroup

from drills import fuzz


def test_chunked_framing_round_trips():
    body = b"a" * 70_000
    framed = fuzz.chunked(body, size=65536)
    assert framed.startswith(b"10000\r\n")
    assert framed.endswith(b"0\r\n\r\n")
    pieces, rest = [], framed
    for _ in range(10):
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            break
        pieces.append(rest[:size])
        rest = rest[size + 2 :]
    assert b"".join(pieces) == body


def test_hostile_cases_cover_every_category_the_issue_names():
    whats = " | ".join(case.what for case in fuzz.hostile_cases())
    for needle in ("nesting", "digit", "UTF-8", "NUL", "10 MB", "thousand tags", "DROP TABLE",
                   "NEAR("):  # fmt: skip
        assert needle in whats, needle


def test_hostile_cases_expect_no_server_error():
    cases = fuzz.hostile_cases()
    assert all(case.expected and max(case.expected) < 500 for case in cases)
    big = [case for case in cases if case.what.startswith("10 MB")]
    assert big and all(len(case.body or b"") > 10_000_000 for case in big)


def test_tally_counts_server_errors_and_keeps_a_few_examples():
    tally = fuzz.Tally()
    for n in range(10):
        tally.record(500 if n == 3 else 200, None if n % 2 else f"broke {n}")
    assert (tally.requests, tally.server_errors, tally.nonconforming) == (10, 1, 5)
    assert tally.examples == ["broke 0", "broke 2", "broke 4", "broke 6", "broke 8"]


def test_every_kind_of_schemathesis_failure_is_counted_not_raised():
    assert issubclass(Failure, fuzz.VALIDATION_FAILURES)
    assert issubclass(FailureGroup, fuzz.VALIDATION_FAILURES)
