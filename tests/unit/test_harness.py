"""The harness's parts that need no container: key files, ports, HTTP to nothing."""

from __future__ import annotations

import os
import stat
from typing import Any

import pytest

from harness import redeploys, secret_files
from harness.http import Client
from harness.playbook import Event, Play
from harness.ports import free_port
from harness.repo import APP_UID
from harness.traffic import MixedTraffic, TrafficRecord


def test_secret_file_is_long_private_and_owned_by_the_app_user(tmp_path):
    path = secret_files.write(tmp_path / "secret_key")
    assert len(path.read_text().strip()) >= 32
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.geteuid() == 0:
        assert (path.stat().st_uid, mode) == (APP_UID, 0o600)
    else:
        assert mode == 0o644


def test_client_reports_an_unreachable_port():
    client = Client(free_port(), timeout=2)
    try:
        client.request("GET", "/healthz")
    except OSError:
        pass
    else:
        raise AssertionError("a request to a closed port answered")


def event(
    kind: str, task: str, host: str, role: str = "webapp", res: dict[str, Any] | None = None
) -> Event:
    data = {"task": task, "host": host, "role": role, "res": res or {}}
    return {"event": kind, "event_data": data}


def test_a_play_answers_per_host_from_ansibles_own_events():
    archive = {"ansible_facts": {"webapp_archive": {"bytes": 1234}}}
    play = Play(
        returncode=2,
        output="",
        events=[
            event("runner_on_start", "Install the compose files.", "web1"),
            event("runner_on_ok", "Install the compose files.", "web1"),
            event("runner_on_skipped", "Install the compose files.", "web2"),
            event("runner_on_failed", "Bring it up.", "web2"),
            event("runner_on_ok", "Bring it up.", "web3", role="other"),
            event("runner_on_ok", "Note the size of the archive.", "web1", res=archive),
        ],
        stats={
            "processed": {"web1": 1, "web2": 1},
            "changed": {"web1": 3},
            "failures": {"web2": 1},
            "dark": {"web2": 0},
        },
    )
    assert play.changed() == {"web1": 3, "web2": 0}
    assert play.failed() == {"web1": 0, "web2": 1}
    assert play.unreachable() == set()
    assert play.ran("Install the compose files.") == {"web1"}
    assert play.ran("Bring it up.") == {"web2"}
    assert play.ran("Bring it up.", role="other") == {"web3"}
    assert play.shipped() == [1234]


def test_a_play_against_no_host_reports_no_host():
    play = Play(returncode=1, output="ERROR! env=staging is not an environment", stats={})
    assert play.changed() == {} and play.hosts() == set() and play.shipped() == []


def test_traffic_names_every_acknowledged_note_not_stored_exactly_once() -> None:
    traffic = MixedTraffic(1, tag="t1")
    traffic.record.acknowledged += ["traffic-t1-0-1", "traffic-t1-0-2", "traffic-t1-1-1"]
    # -0-2 was stored twice, -1-1 never; -9-9 was stored twice but never acknowledged.
    tally = "traffic-t1-0-1|1\ntraffic-t1-0-2|2\ntraffic-t1-9-9|2\n"
    assert traffic.lost_or_doubled(tally) == ["traffic-t1-0-2", "traffic-t1-1-1", "traffic-t1-9-9"]
    assert "LIKE 'traffic-t1-%'" in traffic.tally_sql()
    with pytest.raises(ValueError, match="letters and digits only"):
        MixedTraffic(1, tag="x'; DROP TABLE notes; --")


def test_the_longest_gap_is_placed_in_the_play_it_ended_in() -> None:
    result = redeploys.Redeploys(TrafficRecord(max_gap_ended_at=105.0))
    result.plays = [("redeploy 1", 100.0, 110.0), ("the rollback", 120.0, 130.0)]
    assert redeploys.where(result) == "5.0 s into redeploy 1 (of 10.0 s)"
    result.traffic.max_gap_ended_at = 115.0
    assert redeploys.where(result) == "between plays"
