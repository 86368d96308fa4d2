"""The drills, in run order. Each is a module with `run(context) -> DrillOutcome`."""

from __future__ import annotations

import importlib

from drills.outcome import Drill

# Module names under drills/. Cheap, stack-only drills first; the ones that start SSH
# test hosts last, so a broken stack shows up before minutes go into hosts.
NAMES = [
    "fuzz",
    "writers",
    "crash",
    "disk_full",
    "config",
    "slow_clients",
    "secrets",
    "hardening",
    "deploy_faults",
    "redeploy",
    "host_secrets",
    "host_loss",
]


def load(names: list[str] | None = None) -> list[Drill]:
    """Import the named drills (all by default); a name not in NAMES is refused."""
    chosen = names or NAMES
    unknown = [name for name in chosen if name not in NAMES]
    if unknown:
        raise ValueError(f"unknown drill {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [importlib.import_module(f"drills.{name}").run for name in chosen]
