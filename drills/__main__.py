"""`python -m drills [--quick] [--only NAME ...]`: attack the real stack, report, fail loudly.

Run from the repository root after `nox -s build`. Writes reports/drills.json and
reports/drills.md; exits 1 when any drill failed, 2 on bad arguments or a missing build.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from drills import catalog, report
from drills.outcome import DrillContext, timed
from harness import machine
from kit import console, image
from kit.console import KitError
from kit.docker_cli import engine_ready

REPORTS = Path("reports")


def run(quick: bool, only: list[str] | None) -> int:
    drills = catalog.load(only)
    engine_ready()
    record = image.load_record()
    where = machine.describe()
    began = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="webapp-drills-") as scratch:
        for number, drill in enumerate(drills, start=1):
            name = drill.__module__.rsplit(".", 1)[-1]
            console.say(f"Drill {number}/{len(drills)}: {name}")
            workdir = Path(scratch) / name
            workdir.mkdir()
            context = DrillContext(quick=quick, scratch=workdir, image=record["image"])
            outcome = timed(drill, context)
            outcomes.append(outcome)
            verdict = "passed" if outcome.passed else "FAILED"
            console.detail(f"{verdict} in {outcome.seconds:.0f} s")
            for failure in outcome.failures:
                console.detail(f"FAILED: {failure}")
    paths = report.write(REPORTS, outcomes, mode="quick" if quick else "full", machine=where)
    failed = [outcome.name for outcome in outcomes if not outcome.passed]
    console.say(
        f"Drills done in {time.monotonic() - began:.0f} s: {len(outcomes) - len(failed)} passed, "
        f"{len(failed)} failed{' (' + ', '.join(failed) + ')' if failed else ''}; "
        f"{', '.join(map(str, paths))}"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run, about 6 minutes")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(catalog.NAMES)}"
    )
    arguments = parser.parse_args(argv)
    return console.exit_status(
        lambda: run(arguments.quick, arguments.only),
        failures=(KitError, ValueError),
        failure_status=2,
    )


if __name__ == "__main__":
    sys.exit(main())
