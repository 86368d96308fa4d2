"""The issue's targets, judged from one run's figures."""

from __future__ import annotations

import pytest

from bench import targets
from bench.targets import evaluate
from harness import image_budget

MET = {
    "http.baseline_hello_rps": 1000.0,
    "http.get_note_rps": 600.0,
    "http.proxy_get_note_rps": 480.0,
    "http.baseline_sqlite_insert_rps": 800.0,
    "http.create_note_rps": 400.0,
    "deploy.hosts": 1,
    "deploy.noop_s": 2.0,
    "deploy.code_change_s": 14.0,
    "deploy.naive_code_change_s": 14.0,
    "deploy.code_change_bytes_per_host": 20_000_000,
    "deploy.naive_bytes_per_host": 200_000_000,
    # Exactly on the image budget: the base plus every allowance of harness/image_budget.
    "build.image_bytes": 155_000_000 + image_budget.MAX_GROWTH,
    "build.base_image_bytes": 155_000_000,
    "redeploy.requests": 5000,
    "redeploy.failed": 0,
    "redeploy.lost_or_doubled": 0,
    "redeploy.max_gap_ms": 500.0,
    "operate.status_2hosts_s": targets.STATUS_2HOSTS_MAX_S,
}


def test_figures_exactly_on_every_bound_meet_every_target() -> None:
    verdicts = evaluate(MET)
    assert len(verdicts) == 11
    assert all(v.met for v in verdicts), [v for v in verdicts if not v.met]


@pytest.mark.parametrize(
    ("key", "value", "missed", "figure"),
    [
        ("http.get_note_rps", 599.0, "get_note_rps", "0.60 x"),
        ("http.proxy_get_note_rps", 479.0, "proxy_get_note_rps", "0.80 x"),
        ("http.create_note_rps", 399.0, "create_note_rps", "0.50 x"),
        ("deploy.noop_s", 2.1, "deploy.noop_s", "2.1 s"),
        ("deploy.code_change_s", 14.1, "deploy.code_change_s", "14.1 / 14.0 s = 1.01 x"),
        ("deploy.naive_code_change_s", 0.0, "deploy.code_change_s", "14.0 / 0.0 s = 0.00 x"),
        ("deploy.code_change_bytes_per_host", 20_000_001, "code_change_bytes", "0.1000 x"),
        ("redeploy.failed", 1, "redeploy.failed", "1 of 5,000"),
        ("redeploy.lost_or_doubled", 2, "redeploy.lost_or_doubled", "2"),
        ("redeploy.max_gap_ms", 501.0, "redeploy.max_gap_ms", "501 ms"),
        (
            "build.image_bytes",
            155_000_001 + image_budget.MAX_GROWTH,
            "image",
            f"+{image_budget.MAX_GROWTH / image_budget.MB:.1f} MB",
        ),
        ("operate.status_2hosts_s", 2.004, "operate.status_2hosts_s", "2.00 s"),
    ],
)
def test_each_target_is_missed_just_past_its_bound(
    key: str, value: float, missed: str, figure: str
) -> None:
    verdicts = evaluate({**MET, key: value})
    failed = [v for v in verdicts if not v.met]
    assert len(failed) == 1 and failed[0].name.startswith(missed)
    assert failed[0].figure == figure


def test_a_zero_baseline_is_a_miss_not_a_division_error() -> None:
    verdicts = evaluate({**MET, "http.baseline_hello_rps": 0.0})
    assert not verdicts[0].met


def test_a_run_without_the_operating_commands_has_no_verdict_on_them() -> None:
    without = {key: value for key, value in MET.items() if not key.startswith("operate.")}
    assert [v.name for v in evaluate(without)] == [v.name for v in evaluate(MET)][:-1]
    assert targets.operate(without) == []
    (alone,) = targets.operate({"operate.status_2hosts_s": 0.61})
    assert alone.met and alone.figure == "0.61 s" and alone.name.endswith("≤ 2 s")


def test_the_deploy_targets_follow_the_number_of_hosts() -> None:
    one = {v.name: v for v in targets.deploy(MET)}
    assert list(one) == [
        "deploy.noop_s ≤ 2 s on 1 host",
        "deploy.code_change_s ≤ 1.0 x naive_code_change_s on 1 host",
    ]
    two_hosts = {
        **MET,
        "deploy.hosts": 2,
        "deploy.noop_s": 3.0,
        "deploy.code_change_s": 7.0,
        "deploy.naive_code_change_s": 10.0,
    }
    noop, code_change = targets.deploy(two_hosts)
    assert noop.name == "deploy.noop_s ≤ 3 s on 2 hosts" and noop.met
    assert code_change.name.endswith("≤ 0.7 x naive_code_change_s on 2 hosts")
    assert code_change.met and code_change.figure == "7.0 / 10.0 s = 0.70 x"
    slower = targets.deploy({**two_hosts, "deploy.noop_s": 3.01, "deploy.code_change_s": 7.1})
    assert not any(verdict.met for verdict in slower)
