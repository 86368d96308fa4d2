"""The deploy breakdown: a play's task times, summed per task file over its hosts."""

from __future__ import annotations

from typing import Any

from bench.deploy_times import breakdown
from harness.playbook import Play


def _ended(kind: str, host: str, path: str, seconds: float) -> dict[str, Any]:
    data = {"host": host, "task_path": path, "duration": seconds}
    return {"event": kind, "event_data": data}


TASKS = "/repo/ansible/roles/webapp/tasks"


def test_task_times_are_summed_per_task_file_over_hosts_and_skips() -> None:
    play = Play(
        returncode=0,
        output="",
        events=[
            _ended("runner_on_ok", "web1", f"{TASKS}/ship.yml:12", 1.5),
            _ended("runner_on_ok", "web2", f"{TASKS}/ship.yml:12", 1.0),
            _ended("runner_on_skipped", "web1", f"{TASKS}/ship.yml:40", 0.25),
            _ended("runner_on_failed", "web1", f"{TASKS}/release.yml:3", 2.0),
            {"event": "runner_on_start", "event_data": {"task_path": f"{TASKS}/lock.yml:1"}},
        ],
        seconds=6.0,
    )
    assert play.task_seconds() == {"ship.yml": (3, 2.75), "release.yml": (1, 2.0)}


def test_the_breakdown_puts_the_code_change_s_slowest_first_and_the_rest_last() -> None:
    def play(seconds: float, *ended: tuple[str, float]) -> Play:
        events = [_ended("runner_on_ok", "web1", f"{TASKS}/{f}:1", s) for f, s in ended]
        return Play(returncode=0, output="", events=events, seconds=seconds)

    rows = breakdown(
        {
            "noop": play(2.0, ("probe.yml", 0.5)),
            "code_change": play(9.0, ("probe.yml", 0.5), ("bring_up.yml", 6.0)),
        }
    )
    assert [row["tasks"] for row in rows] == ["bring_up.yml", "probe.yml", "outside any task"]
    assert rows[0]["noop"] == {"count": 0, "seconds": 0.0}
    assert rows[0]["code_change"] == {"count": 1, "seconds": 6.0}
    assert rows[-1]["noop"] == {"count": 0, "seconds": 1.5}
    assert rows[-1]["code_change"] == {"count": 0, "seconds": 2.5}
