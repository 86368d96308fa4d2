"""The crash drill's choice of what each cycle kills."""

from __future__ import annotations

import random

from drills.crash import targets_for


def test_first_cycles_kill_each_service_then_both():
    chooser = random.Random(1)
    assert [targets_for(c, chooser) for c in range(3)] == [
        ("app",), ("sqlite",), ("app", "sqlite"),
    ]  # fmt: skip


def test_later_cycles_pick_among_the_same_targets():
    chooser = random.Random(7)
    picked = {targets_for(cycle, chooser) for cycle in range(3, 60)}
    assert picked == {("app",), ("sqlite",), ("app", "sqlite")}
