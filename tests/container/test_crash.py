"""SIGKILL the app and the sqlite service in the middle of concurrent writes, repeatedly.

A write counts as acknowledged when the API answered 201 with the note. After every kill
the prod restart policy must bring the killed containers back to healthy by itself, and at
the end every acknowledged note must still be there and SQLite's integrity check must say
ok.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.crashes import Writers, all_note_titles, kill_and_recover
from harness.stack import Stack, wait_for

CYCLES = 10
ACKS_BEFORE_KILL = 20
ACKS_AFTER_RESTART = 10
# Which containers each cycle kills, in turn: the app, the data service, then both.
TARGETS = (("app",), ("sqlite",), ("app", "sqlite"))


@pytest.fixture(scope="module")
def crash_stack(stacks: Any, secret_file: Path) -> Stack:
    # Frequent backups, so some kills land while the sqlite service is mid-backup.
    stack: Stack = stacks("prod", "crash", WEBAPP_SECRET_KEY_FILE=str(secret_file),
                          BACKUP_INTERVAL="3", BACKUP_KEEP="2")  # fmt: skip
    stack.up()
    return stack


def test_sigkill_cycles_lose_no_acknowledged_write(crash_stack: Stack) -> None:
    writers = Writers(crash_stack)
    kills = 0
    for cycle in range(CYCLES):
        writers.start()
        floor = writers.count()
        wait_for(lambda f=floor: writers.count() >= f + ACKS_BEFORE_KILL,
                 attempts=300, pause=0.1, what="writes before the kill")  # fmt: skip
        targets = TARGETS[cycle % len(TARGETS)]
        kill_and_recover(crash_stack, targets)
        kills += len(targets)
        floor = writers.count()
        wait_for(lambda f=floor: writers.count() >= f + ACKS_AFTER_RESTART,
                 attempts=300, pause=0.1, what="writes after the restart")  # fmt: skip
        writers.join()
        assert crash_stack.sql("PRAGMA integrity_check;") == "ok", f"cycle {cycle}"

    stored = all_note_titles(crash_stack)
    lost = {i: t for i, t in writers.acknowledged.items() if stored.get(i) != t}
    assert lost == {}, f"{len(lost)} acknowledged writes lost"
    assert kills >= CYCLES
    assert len(writers.acknowledged) >= CYCLES * (ACKS_BEFORE_KILL + ACKS_AFTER_RESTART)
    assert crash_stack.sql("PRAGMA integrity_check;") == "ok"
    print(
        f"\n{CYCLES} kill cycles ({kills} SIGKILLs), {len(writers.acknowledged)} acknowledged "
        f"writes, {writers.failures} failed attempts, 0 lost"
    )
