"""Drill 3: SIGKILL `app` and `sqlite` under write load, at random moments, many times.

The kill cycle is the container crash test's (harness.crashes): writers
that remember every acknowledged note, a SIGKILL from the host so the restart policy must
bring the container back by itself, then more writes. The drill adds a random delay
before each kill, more cycles, and SQLite's integrity check after every cycle; at the end
every acknowledged note must be there with its title.
"""

from __future__ import annotations

import random
import time

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from harness.crashes import Writers, all_note_titles, kill_and_recover
from harness.stack import wait_for
from kit import console

CYCLES_FULL = 20
CYCLES_QUICK = 3
# Up to this long after the writers are going, so kills land at varied points of a
# request, a commit, a checkpoint or a backup.
MAX_KILL_DELAY = 1.5


def targets_for(cycle: int, chooser: random.Random) -> tuple[str, ...]:
    """Which services a cycle kills: each in turn, both at once, then at random."""
    fixed = (("app",), ("sqlite",), ("app", "sqlite"))
    if cycle < len(fixed):
        return fixed[cycle]
    return fixed[chooser.randrange(len(fixed))]


def kill_cycle(
    prod: stack.DrillStack, writers: Writers, targets: tuple[str, ...], chooser: random.Random
) -> None:
    """Writes, a kill at a random moment, recovery, more writes; AssertionError if stuck."""
    writers.start()
    try:
        more_writes(writers, "writes before the kill")
        time.sleep(chooser.uniform(0, MAX_KILL_DELAY))
        kill_and_recover(prod.compose, targets)
        more_writes(writers, "writes after the restart")
    finally:
        writers.join()


def more_writes(writers: Writers, what: str) -> None:
    """Wait (bounded) until the writers have had a few more writes acknowledged."""
    floor = writers.count()
    wait_for(lambda: writers.count() >= floor + 5, attempts=300, pause=0.1, what=what)


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="crash")
    cycles = CYCLES_QUICK if context.quick else CYCLES_FULL
    seed = random.SystemRandom().randrange(2**32)
    chooser = random.Random(seed)  # noqa: S311 - timing jitter, not security
    outcome.notes.append(f"random seed {seed} (kill delays and targets)")
    done = 0
    integrity_failures = 0
    lost = -1
    # Frequent backups, so some kills land while the sqlite service is mid-backup.
    with stack.running(context, "crash", BACKUP_INTERVAL="3", BACKUP_KEEP="2") as prod:
        writers = Writers(prod.compose)
        for cycle in range(cycles):
            targets = targets_for(cycle, chooser)
            try:
                with console.step(f"Cycle {cycle + 1}/{cycles}: SIGKILL {' + '.join(targets)}"):
                    kill_cycle(prod, writers, targets, chooser)
            except AssertionError as error:
                # A service that never came back: the figures so far still count.
                outcome.fail(f"cycle {cycle + 1}: {' '.join(str(error).split())[:300]}")
                break
            integrity = prod.integrity_check()
            if integrity != "ok":
                integrity_failures += 1
                outcome.notes.append(f"cycle {cycle + 1}: integrity_check {integrity[:200]}")
            done += 1
        stored = all_note_titles(prod.compose)
        missing = {i: t for i, t in writers.acknowledged.items() if stored.get(i) != t}
        lost = len(missing)
        final_integrity = prod.integrity_check()
    outcome.figures.update({
        "crash.cycles": done,
        "crash.acknowledged": len(writers.acknowledged),
        "crash.lost": lost,
        "crash.integrity_failures": integrity_failures + (final_integrity != "ok"),
    })  # fmt: skip
    outcome.notes.append(
        f"{done} cycles, {len(writers.acknowledged)} acknowledged writes, "
        f"{writers.failures} attempts refused or cut off while a service was down"
    )
    outcome.check(done == cycles, f"only {done} of {cycles} kill cycles completed")
    outcome.check(lost == 0, f"{lost} acknowledged writes lost, e.g. {sorted(missing)[:5]}")
    outcome.check(
        integrity_failures == 0 and final_integrity == "ok",
        f"integrity_check failed after {integrity_failures} cycles (final: {final_integrity})",
    )
    return outcome
