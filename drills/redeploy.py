"""Redeploys under traffic on a real SSH test host: no request may fail, no write be lost.

The host runs the real `deploy.yml`; mixed POST/GET/PUT traffic goes through its proxy
(its port 80, as a client's would) while the release alternates between the build and a
code change derived from it, each deploy switching the app's slots, and then
`rollback.yml` switches back once more. Every request must be answered as expected, every
acknowledged note be stored exactly once, and no stretch without a success exceed
MAX_GAP_MS. Quick mode: 3 redeploys; full: 10.
"""

from __future__ import annotations

from drills import host_lab
from drills.outcome import DrillContext, DrillOutcome
from harness import redeploys
from kit import console

MAX_GAP_MS = 500


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="redeploy")
    count = 3 if context.quick else 10
    with host_lab.running(context, "redeploy", 1) as lab:
        # Per-task times in the kept logs, to find what a gap coincides with.
        lab.env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        v1 = lab.releases["v1"]
        v2 = lab.derive("v2", "COPY change.txt /app/drill-change.txt", {"change.txt": "x\n"})
        with console.step(f"First deploy of {context.image}"):
            first = lab.deploy(v1)
        if not outcome.check(
            first.returncode == 0,
            f"the first deploy failed (exit {first.returncode}); see {lab.logs}",
        ):
            return outcome
        order = [v2 if n % 2 == 0 else v1 for n in range(count)]
        with console.step(f"{count} redeploys and a rollback under mixed traffic"):
            result = redeploys.run(lab, order, console.detail)
    load = result.traffic
    if result.failed_play is not None:
        outcome.fail(
            f"a deploy or the rollback failed (exit {result.failed_play.returncode}); "
            f"see {result.failed_play.log}"
        )
    outcome.check(
        load.failed == 0,
        f"{load.failed} of {load.requests} requests failed during the redeploys: "
        + ", ".join(f"{kind} x{n}" for kind, n in load.failures.most_common(5)),
    )
    outcome.check(
        not result.lost_or_doubled,
        f"{len(result.lost_or_doubled)} acknowledged notes are not stored exactly once "
        f"(e.g. {result.lost_or_doubled[:3]})",
    )
    outcome.check(
        load.max_gap_ms <= MAX_GAP_MS,
        f"{load.max_gap_ms:.0f} ms passed without a successful request (at most {MAX_GAP_MS}), "
        f"ending {redeploys.where(result)}",
    )
    outcome.figures.update(
        {
            "redeploy.count": len(result.deploys),
            "redeploy.requests": load.requests,
            "redeploy.failed": load.failed,
            "redeploy.max_gap_ms": round(load.max_gap_ms),
            "redeploy.lost_or_doubled": len(result.lost_or_doubled),
            "redeploy.deploy_median_s": round(sorted(result.deploys)[len(result.deploys) // 2], 1)
            if result.deploys
            else 0,
            "redeploy.rollback_s": round(result.rollback_s, 1),
        }
    )
    return outcome
