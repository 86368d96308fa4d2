"""Deploy times on SSH + Docker test hosts: the kit's deploy against the naive way, and
consecutive redeploys and a rollback under mixed traffic through the proxy.

The hosts are the deploy tests' own (harness.lab): containers with sshd and a Docker
engine, reached only through ports on 127.0.0.1. The kit's deploy is the real
`ansible-playbook deploy.yml`; the naive way is `docker save` piped over SSH into
`docker load`, then `docker compose up`, for every host and every release.
"""

# The bench drives docker, wrk and ssh by name, as the kit does (kit/** has the same
# exemption): every argument is built here, none comes from a user.

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import hosts
from harness import lab as labs
from harness import redeploys as redeploy_loop
from harness.commands import docker
from harness.hosts import Host
from harness.lab import Lab
from harness.playbook import Play
from harness.repo import HOST_COMPOSE, ROOT
from kit import console
from kit.console import KitError

# Kept after the run (reports/ is git-ignored), with ansible's per-task times.
LOGS = ROOT / "reports" / "deploy-logs"
# Bounds for every loop: no deploy and no load run may outlast these.
DEPLOY_TIMEOUT_S = 900
# Consecutive code-change redeploys under traffic, then one rollback.
FULL_REDEPLOYS = 10
QUICK_REDEPLOYS = 3


@contextmanager
def running_lab(workdir: Path, count: int) -> Iterator[Lab]:
    """`count` prepared test hosts; the releases are the bench's own build records."""
    names = [f"bench{number}" for number in range(1, count + 1)]
    with labs.running(workdir / "lab", "bench", prod=names, logs=LOGS) as lab:
        # Per-task times in the kept log: where a slow deploy spends its time.
        lab.env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        yield lab


def inventory_of(lab: Lab, chosen: list[Host]) -> Path:
    """An inventory whose environment prod is CHOSEN alone, of the lab's hosts; a play's
    `--limit` would leave out the controller's own plays too."""
    names = "-".join(host.name for host in chosen)
    return hosts.inventory(lab.workdir / f"inventory-{names}.ini", lab.key, {"prod": chosen})


def deploy(lab: Lab, record: Path, inventory: Path | None = None) -> Play:
    """`deploy.yml -e env=prod` with this build record, to INVENTORY's hosts (else all the
    lab's): the finished play, which has its seconds, bytes per host and task times."""
    play = lab.play(
        "deploy.yml", *lab.deploy_args(record), label=f"deploy-{record.stem}", inventory=inventory
    )
    if play.returncode != 0:
        raise KitError(
            f"the bench deploy of {record.stem} failed (exit {play.returncode}); see {play.log}"
        )
    return play


def breakdown(plays: dict[str, Play]) -> list[dict[str, Any]]:
    """One row per task file, with its task count and seconds in each play, slowest in
    the code change first; the last row is what no task accounts for (Ansible's start,
    the plays' setup, the controller between tasks)."""
    times = {name: play.task_seconds() for name, play in plays.items()}

    def cell(name: str, where: str) -> dict[str, Any]:
        count, seconds = times[name].get(where, (0, 0.0))
        return {"count": count, "seconds": round(seconds, 2)}

    files = sorted({where for tasks in times.values() for where in tasks})
    files.sort(key=lambda where: -times.get("code_change", {}).get(where, (0, 0.0))[1])
    rows = [{"tasks": where, **{name: cell(name, where) for name in plays}} for where in files]
    rest = {
        name: {
            "count": 0,
            "seconds": round(play.seconds - sum(s for _, s in times[name].values()), 2),
        }
        for name, play in plays.items()
    }
    return [*rows, {"tasks": "outside any task", **rest}]


def naive_deploy(lab: Lab, image: str, hosts: list[Host]) -> tuple[float, int]:
    """Full `docker save` per host over SSH, `docker load`, `compose up --wait`."""
    started = time.monotonic()
    archive = lab.workdir / "naive.tar"
    shipped = 0
    up = f"export WEBAPP_IMAGE={image}; {HOST_COMPOSE} up --detach --wait --remove-orphans"
    for host in hosts:
        # The naive way keeps no cache: it exports the image for every host it ships.
        docker("save", "--output", str(archive), image, timeout=DEPLOY_TIMEOUT_S)
        shipped = archive.stat().st_size
        for command, stdin in (("docker load --quiet", archive), (up, None)):
            result = lab.ssh(host, command, stdin)
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise KitError(f"naive deploy step `{command[:60]}` on {host.name} failed: {last}")
        archive.unlink()
    return time.monotonic() - started, shipped


def measure(
    lab: Lab, releases: dict[str, Path], naive_image: str, *, quick: bool, count: int
) -> dict[str, Any]:
    """First deploy, no-change re-run, code-change redeploy, redeploys under traffic, naive,
    to the lab's first COUNT hosts (the others are left for later phases)."""
    out: dict[str, Any] = {"deploy.hosts": count}
    measured = lab.hosts[:count]
    only = inventory_of(lab, measured) if count < len(lab.hosts) else None
    plays: dict[str, Play] = {}
    with console.step(f"First deploy to {count} test host(s)"):
        plays["first"] = deploy(lab, releases["v1"], only)
        out["deploy.first_s"] = plays["first"].seconds
        console.detail(f"{out['deploy.first_s']:.1f} s, shipped {plays['first'].shipped()} bytes")
    with console.step("No-change re-run"):
        plays["noop"] = deploy(lab, releases["v1"], only)
        out["deploy.noop_s"] = plays["noop"].seconds
    with console.step("Code-change redeploy"):
        plays["code_change"] = deploy(lab, releases["v2"], only)
        out["deploy.code_change_s"] = plays["code_change"].seconds
    shipped = plays["code_change"].shipped()
    out["deploy.code_change_bytes_per_host"] = max(shipped) if shipped else 0
    out["deploy_breakdown"] = breakdown(plays)
    console.detail(f"code change: {out['deploy.code_change_s']:.1f} s, shipped {shipped} bytes")
    redeploys_count = QUICK_REDEPLOYS if quick else FULL_REDEPLOYS
    # Two builds in turn, each deploy a code change that switches the app's slots.
    order = [releases["v3"] if n % 2 == 0 else releases["v2"] for n in range(redeploys_count)]
    with console.step(
        f"{redeploys_count} redeploys and a rollback under mixed traffic on the first host"
    ):
        redeploys = redeploy_loop.run(lab, order, console.detail, only)
    if redeploys.failed_play is not None:
        play = redeploys.failed_play
        raise KitError(f"a bench redeploy failed (exit {play.returncode}); see {play.log}")
    load = redeploys.traffic
    console.detail(
        f"{load.failed}/{load.requests} failed, max gap {load.max_gap_ms:.0f} ms "
        f"(ending {redeploy_loop.where(redeploys)}), "
        f"{len(load.acknowledged)} notes acknowledged, {len(redeploys.lost_or_doubled)} "
        "lost or doubled"
    )
    with console.step("Naive code-change deploy: full `docker save` + `compose up` per host"):
        out["deploy.naive_code_change_s"], out["deploy.naive_bytes_per_host"] = naive_deploy(
            lab, naive_image, measured
        )
    out.update(
        {
            "redeploy.count": len(redeploys.deploys),
            "redeploy.requests": load.requests,
            "redeploy.failed": load.failed,
            "redeploy.max_gap_ms": load.max_gap_ms,
            "redeploy.lost_or_doubled": len(redeploys.lost_or_doubled),
            "redeploy_failures": dict(load.failures),
        }
    )
    return out
