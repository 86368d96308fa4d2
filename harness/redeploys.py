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
            play = lab.deploy(release, inventory=inventory)
            if play.returncode != 0:
                result.failed_play = play
                break
            result.deploys.append(play.seconds)
            progress(
                f"redeploy {number}/{len(releases)}: {play.seconds:.1f} s, "
                f"{traffic.record.failed}/{traffic.record.requests} requests failed so far"
            )
        else:
            play = lab.rollback(releases[-1], inventory)
            if play.returncode != 0:
                result.failed_play = play
            result.rollback_s = play.seconds
            progress(f"rollback: {play.seconds:.1f} s")
        time.sleep(MARGIN_S)
    tally = host.sh(f'{HOST_COMPOSE} exec -T sqlite sqlite3 /data/app.db "{traffic.tally_sql()}"')
    result.lost_or_doubled = traffic.lost_or_doubled(tally.stdout)
    return result
