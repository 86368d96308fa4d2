"""Rendering reports/bench.json, bench.md and bench.png from one run's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import targets
from bench.report import KEYS, OPERATE_KEYS, ReportError, markdown, nested, write, write_operate
from bench.targets import evaluate
from harness import image_budget

FLAT = {key: float(number + 1) for number, key in enumerate(KEYS)}
FLAT.update(
    {
        "http.baseline_hello_rps": 2000.0,
        "http.get_note_rps": 900.0,
        "deploy.code_change_bytes_per_host": 40_960.0,
        "deploy.naive_bytes_per_host": 214_208_512.0,
        "build.image_bytes": 206_900_000.0,
        "build.base_image_bytes": 155_400_000.0,
        "operate.status_1host_s": 0.456,
        "operate.status_2hosts_s": 2.5,
        "operate.exec_s": 0.37,
        "operate.status_first_s": 3.04,
    }
)
DETAILS = {
    "mode": "quick",
    "hosts": 1,
    "cold_scope": "no wheels, no layer cache, local base reused",
    "scenarios": {"get_note": {"rps": 900.0, "p50_ms": 4.0, "p99_ms": 30.0, "errors": 2}},
    "sweep": [
        {"workers": 1, "threads": 4, "get_note_rps": 500.0, "create_note_rps": 300.0},
        {"workers": 2, "threads": 4, "get_note_rps": 900.0, "create_note_rps": 350.0, "best": 1},
    ],
    "redeploy_failures": {"POST 502": 2, "GET ConnectionResetError": 1},
    "operate_runs": 3,
    "deploy_breakdown": [
        {
            "tasks": "bring_up.yml",
            "first": {"count": 3, "seconds": 9.5},
            "noop": {"count": 0, "seconds": 0.0},
            "code_change": {"count": 3, "seconds": 7.25},
        },
        {
            "tasks": "outside any task",
            "first": {"count": 0, "seconds": 2.0},
            "noop": {"count": 0, "seconds": 1.5},
            "code_change": {"count": 0, "seconds": 1.75},
        },
    ],
}


def test_json_groups_exactly_the_issues_keys() -> None:
    document = nested(FLAT)
    assert sorted(f"{group}.{name}" for group in document for name in document[group]) == sorted(
        KEYS
    )
    assert document["http"]["get_note_rps"] == 900.0


def test_a_missing_key_is_refused_by_name() -> None:
    partial = {k: v for k, v in FLAT.items() if k not in ("redeploy.failed", "build.noop_s")}
    with pytest.raises(ReportError, match=r"no value for build\.noop_s, redeploy\.failed"):
        nested(partial)


def test_markdown_shows_figures_sweep_winner_and_missed_targets() -> None:
    text = markdown(FLAT, DETAILS, evaluate(FLAT), "2 cores, 8.0 GB RAM")
    assert text.startswith("Machine: 2 cores, 8.0 GB RAM. Mode: quick.")
    assert "| `GET /api/notes/{id}` | 900 | 4.0 | 30.0 | 2 |" in text
    assert "| 2 x 4 (best) | 900 | 350 |" in text
    assert "| 1 x 4 | 500 | 300 |" in text
    assert "| image / base image | 206.9 MB / 155.4 MB |" in text
    assert "| bytes shipped per host | 40,960 | 214,208,512 |" in text
    # get_note is 0.45 x hello: missed; the image is +51.5 MB: met.
    assert "| get_note_rps ≥ 0.6 x baseline_hello_rps | 0.45 x | MISSED |" in text
    assert f"| image ≤ {image_budget.describe()} | +51.5 MB | yes |" in text


def test_write_makes_json_markdown_and_a_png(tmp_path: Path) -> None:
    paths = write(tmp_path / "reports", FLAT, DETAILS, evaluate(FLAT), "2 cores")
    assert [p.name for p in paths] == ["bench.json", "bench.md", "bench.png"]
    document = json.loads(paths[0].read_text())
    assert document["redeploy"]["max_gap_ms"] == FLAT["redeploy.max_gap_ms"]
    assert {t["met"] for t in document["targets"]} == {True, False}
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[2].stat().st_size > 10_000


def test_markdown_shows_the_operating_commands_on_one_and_two_hosts() -> None:
    text = markdown(FLAT, DETAILS, evaluate(FLAT), "2 cores")
    assert "| operating command, a fresh process (median of 3) | 1 host | 2 hosts |" in text
    assert "| `status` | 0.46 s | 2.50 s |" in text
    # exec runs on one host; the first status is measured on the two.
    assert "| `exec --host H app true` | 0.37 s | — |" in text
    assert "| first `status`: inventory listing and connections new | — | 3.04 s |" in text
    assert "| operate.status_2hosts_s ≤ 2 s | 2.50 s | MISSED |" in text


def test_the_operating_commands_alone_make_their_own_report(tmp_path: Path) -> None:
    alone = {key: FLAT[key] for key in OPERATE_KEYS}
    paths = write_operate(tmp_path, alone, DETAILS, targets.operate(alone), "2 cores, load 3.3")
    assert [p.name for p in paths] == ["operate.json", "operate.md"]
    document = json.loads(paths[0].read_text())
    assert document["operate"]["status_2hosts_s"] == 2.5
    assert set(document) == {"operate", "targets", "details", "machine"}
    assert document["targets"] == [
        {"target": "operate.status_2hosts_s ≤ 2 s", "met": False, "figure": "2.50 s"}
    ]
    text = paths[1].read_text()
    assert text.startswith("Machine: 2 cores, load 3.3. Mode: quick.")
    assert "| `status` | 0.46 s | 2.50 s |" in text
    with pytest.raises(ReportError, match=r"no value for operate\.exec_s"):
        write_operate(tmp_path, {k: v for k, v in alone.items() if k != "operate.exec_s"},
                      DETAILS, [], "2 cores")  # fmt: skip


def test_markdown_shows_where_each_deploy_spent_its_seconds() -> None:
    text = markdown(FLAT, DETAILS, evaluate(FLAT), "2 cores")
    assert (
        "| deploy seconds by task file (tasks ended) | first | no-change | code change |" in text
    )
    assert "| `bring_up.yml` | 9.5 (3) | 0.0 | 7.2 (3) |" in text
    assert "| `outside any task` | 2.0 | 1.5 | 1.8 |" in text
