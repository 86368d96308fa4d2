"""Reading wrk's BENCH_RESULT line (bench/wrk/scenario.lua's done())."""

from __future__ import annotations

import pytest

from bench.wrk_result import WrkOutputError, parse

LINE = (
    'BENCH_RESULT {"requests": 3000, "duration_us": 2000000, "p50_ms": 4.250, '
    '"p99_ms": 31.500, "max_ms": 80.125, "errors": {"connect": 1, "read": 2, "write": 0, '
    '"status": 7, "timeout": 3}, "conflicts": 5, "non2xx": 4}'
)
WRK_TABLE = "Running 2s test @ http://127.0.0.1:8000\n  2 threads and 16 connections\n"


def test_a_result_line_among_wrks_own_output_is_read() -> None:
    result = parse(WRK_TABLE + LINE + "\nRequests/sec: 1500.00\n", generator_cpu_pct=42.0)
    assert result.requests == 3000
    assert result.rps == 1500.0
    assert (result.p50_ms, result.p99_ms, result.max_ms) == (4.25, 31.5, 80.125)
    assert result.conflicts == 5
    assert result.generator_cpu_pct == 42.0


def test_errors_count_socket_failures_and_non_2xx_but_not_412_twice() -> None:
    # wrk's own "status" counter overlaps non2xx (it counts every status > 399, 412s
    # included), so only the script's non2xx, which leaves 412s out, is added.
    assert parse(LINE).errors == 1 + 2 + 0 + 3 + 4


def test_a_run_of_zero_duration_reports_zero_rps_not_a_crash() -> None:
    line = LINE.replace(
        '"requests": 3000, "duration_us": 2000000', '"requests": 0, "duration_us": 0'
    )
    assert parse(line).rps == 0.0


def test_output_without_the_line_names_the_script_to_use() -> None:
    with pytest.raises(WrkOutputError, match=r"found 0 .*unable to connect.*scenario\.lua"):
        parse("unable to connect to 127.0.0.1:9 Connection refused\n")


def test_two_result_lines_are_refused() -> None:
    with pytest.raises(WrkOutputError, match="found 2"):
        parse(LINE + "\n" + LINE)


@pytest.mark.parametrize(
    "broken",
    [
        "BENCH_RESULT {not json",
        LINE.replace('"p99_ms": 31.500, ', ""),
        LINE.replace('"requests": 3000', '"requests": "many"'),
    ],
)
def test_a_malformed_line_is_an_error_naming_it(broken: str) -> None:
    with pytest.raises(WrkOutputError, match="malformed BENCH_RESULT line"):
        parse(broken)
