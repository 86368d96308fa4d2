"""Consecutive redeploys and a rollback on a lab host while mixed traffic goes through its
proxy: the bench's `redeploy.*` figures and the `redeploy` drill's verdict come from here.

Each deploy alternates between two releases, so every one is a code change that switches
the app's slots; the rollback then goes back through the same switch. Afterwards the host's
own sqlite3 counts the notes the traffic was told were created.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab import Lab, Release
from harness.playbook import Play
from harness.repo import HOST_COMPOSE
from harness.traffic import MixedTraffic, TrafficRecord

# Successes before the first deploy and after the rollback: a slow recovery shows as a gap.
MARGIN_S = 1.0


@dataclass
class Redeploys:
    traffic: TrafficRecord
    deploys: list[float] = field(default_factory=list)  # seconds per deploy
    # (what, started, ended) in time.time() for each play, to place the longest gap.
    plays: list[tuple[str, float, float]] = field(default_factory=list)
    rollback_s: float = 0.0
    # Acknowledged notes not stored exactly once (see MixedTraffic.lost_or_doubled).
    lost_or_doubled: list[str] = field(default_factory=list)
    # The first play that failed, if any: the loop stops there.
    failed_play: Play | None = None


def run(
    lab: Lab,
    releases: Sequence[Release | Path],
    progress: Callable[[str], None] = lambda line: None,
    inventory: Path | None = None,
) -> Redeploys:
    """Deploy each of `releases` in turn, then `rollback.yml`, under traffic to hosts[0],
    to INVENTORY's hosts (else all the lab's)."""
    host = lab.hosts[0]
    assert host.public_port is not None, f"{host.name} publishes no proxy port"
    with MixedTraffic(host.public_port) as traffic:
        result = Redeploys(traffic.record)
        time.sleep(MARGIN_S)
        for number, release in enumerate(releases, start=1):
            began = time.time()
            play = lab.deploy(release, inventory=inventory)
            result.plays.append((f"redeploy {number}", began, time.time()))
            if play.returncode != 0:
                result.failed_play = play
                break
            result.deploys.append(play.seconds)
            progress(
                f"redeploy {number}/{len(releases)}: {play.seconds:.1f} s, "
                f"{traffic.record.failed}/{traffic.record.requests} requests failed so far"
            )
        else:
            began = time.time()
            play = lab.rollback(releases[-1], inventory)
            result.plays.append(("the rollback", began, time.time()))
            if play.returncode != 0:
                result.failed_play = play
            result.rollback_s = play.seconds
            progress(f"rollback: {play.seconds:.1f} s")
        time.sleep(MARGIN_S)
    tally = host.sh(f'{HOST_COMPOSE} exec -T sqlite sqlite3 /data/app.db "{traffic.tally_sql()}"')
    result.lost_or_doubled = traffic.lost_or_doubled(tally.stdout)
    return result


def where(result: Redeploys) -> str:
    """Where the longest gap without a success ended: "34.2 s into redeploy 2", or "between
    plays"."""
    ended = result.traffic.max_gap_ended_at
    for what, began, done in result.plays:
        if began <= ended <= done:
            return f"{ended - began:.1f} s into {what} (of {done - began:.1f} s)"
    return "between plays"
