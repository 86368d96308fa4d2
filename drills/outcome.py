"""What a drill reports: its figures under the report's JSON keys, and what went wrong."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Figure = int | float | str | bool


@dataclass(frozen=True)
class DrillContext:
    """What every drill is given: the run's mode, a private scratch directory, the image."""

    quick: bool
    scratch: Path
    image: str  # the reference from build/image.json, e.g. webapp:0.1.0-abc1234


@dataclass
class DrillOutcome:
    """One drill's result.

    `figures` use the report's JSON keys ("crash.lost"). Two drills may report the same
    numeric key (both count `secrets.leaks`, for example): the report adds them up.
    A drill failed when `failures` is not empty; each entry is one line a reader can act on.
    """

    name: str
    figures: dict[str, Figure] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def check(self, condition: bool, message: str) -> bool:
        """Record `message` as a failure unless `condition` holds; return the condition."""
        if not condition:
            self.fail(message)
        return condition


Drill = Callable[[DrillContext], DrillOutcome]


def timed(drill: Drill, context: DrillContext) -> DrillOutcome:
    """Run one drill; a crash inside it is that drill's failure, not the whole run's."""
    started = time.monotonic()
    name = drill.__module__.rsplit(".", 1)[-1]
    try:
        outcome = drill(context)
    except Exception as error:  # reported as this drill's failure, the others still run
        outcome = DrillOutcome(name=name)
        outcome.fail(f"the drill itself crashed: {type(error).__name__}: {error}")
    outcome.seconds = time.monotonic() - started
    return outcome
