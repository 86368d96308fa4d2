"""SSH + Docker test hosts for the drills that deploy: started, deployed to, always removed.

The hosts and the plays are harness.lab's, as in the deploy tests: containers with their
own sshd and Docker engine, reached only through ports on 127.0.0.1, and the real
`ansible-playbook deploy.yml -e env=prod` against them, with build records for images
derived from the current build (a failing migration, a crash at start, a code change).

    with host_lab.running(context, "deploy_faults", count=1) as lab:
        first = lab.deploy(lab.releases["v1"])
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from drills.outcome import DrillContext
from harness import lab as labs
from harness.repo import ROOT
from kit import console

# Each play's output, kept after the run (reports/ is git-ignored) for the failures to cite.
LOGS = ROOT / "reports" / "drill-logs"


@contextmanager
def running(context: DrillContext, name: str, count: int) -> Iterator[labs.Lab]:
    """`count` docker hosts and a generated inventory and key; everything removed after."""
    names = [f"{name.replace('_', '')}{number}" for number in range(1, count + 1)]
    with ExitStack() as teardown:
        with console.step(f"Starting {count} SSH + Docker test host(s)"):
            lab = teardown.enter_context(
                labs.running(
                    context.scratch / "lab",
                    f"drills-{name}",
                    base_image=context.image,
                    prod=names,
                    logs=LOGS / name,
                )
            )
        yield lab
