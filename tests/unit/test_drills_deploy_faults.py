"""The pure judgements of the failed-deploy drill: whole releases, lost notes, the cue."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

from drills.deploy_faults import (
    FAILING_MIGRATION,
    UP_TASK,
    HostState,
    children_of,
    lost_notes,
    mix_reason,
    ssh_sessions,
    task_starts,
)

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
SCHEMAS = {OLD: "0001", NEW: "0001"}


def state(**changes: Any) -> HostState:
    healthy = HostState(
        app_image=OLD, sqlite_image=OLD, schema="0001", reported_schema="0001", ready=True
    )
    return dataclasses.replace(healthy, **changes)


def test_one_whole_release_is_not_a_mix() -> None:
    assert mix_reason(state(), SCHEMAS) is None
    assert mix_reason(state(app_image=NEW, sqlite_image=NEW), SCHEMAS) is None


def test_services_on_two_images_are_a_mix() -> None:
    reason = mix_reason(state(app_image=NEW), SCHEMAS)
    assert reason == f"app runs {NEW[:19]} but sqlite runs {OLD[:19]}"


def test_an_image_neither_old_nor_new_is_a_mix() -> None:
    other = "sha256:" + "c" * 64
    reason = mix_reason(state(app_image=other, sqlite_image=other), SCHEMAS)
    assert reason is not None and "neither the old nor the new" in reason


def test_a_schema_the_release_does_not_expect_is_a_mix() -> None:
    reason = mix_reason(state(schema="0002", reported_schema="0002"), SCHEMAS)
    assert reason == f"the database is at schema 0002, its release {OLD[:19]} expects 0001"


def test_version_disagreeing_with_the_database_is_a_mix() -> None:
    reason = mix_reason(state(reported_schema="unreachable"), SCHEMAS)
    assert reason == "/version reports schema unreachable, the database is at 0001"


def test_missing_and_changed_notes_are_lost_and_new_ones_are_not() -> None:
    written = {
        1: {"id": 1, "title": "a", "body": "x", "tags": [], "version": 1},
        2: {"id": 2, "title": "b", "body": "y", "tags": ["t"], "version": 1},
        3: {"id": 3, "title": "c", "body": "z", "tags": [], "version": 1},
    }
    found = [
        written[1],
        {**written[2], "body": "overwritten"},
        {"id": 9, "title": "new", "body": "", "tags": [], "version": 1},
    ]
    assert lost_notes(written, found) == [2, 3]
    assert lost_notes(written, list(written.values())) == []


def test_the_compose_task_is_counted_once_per_host_batch() -> None:
    up = "Bring the release up health first, detached from the SSH session."
    events = [
        {"event": "playbook_on_task_start", "event_data": {"task": up, "role": "webapp"}},
        {"event": "runner_on_start", "event_data": {"task": up, "host": "web1"}},
        {"event": "runner_on_ok", "event_data": {"task": up, "host": "web1"}},
        {"event": "playbook_on_task_start", "event_data": {"task": "Wait until healthy."}},
        {"event": "playbook_on_task_start", "event_data": {"task": up, "role": "webapp"}},
    ]
    assert task_starts(events, UP_TASK) == 2
    assert task_starts(events[:4], UP_TASK) == 1


def test_only_sshd_connections_are_cut_never_the_async_compose_job() -> None:
    # Debian 13's OpenSSH names a connection sshd-session; Debian 12's, sshd.
    children = [(40, "sshd-session"), (41, "python3"), (42, "sshd"), (43, "docker")]
    assert ssh_sessions(children) == [40, 42]


def test_the_failing_migration_is_valid_python_that_raises_in_upgrade() -> None:
    # Compiled and run for real, with alembic's `op` standing in as an object that accepts
    # every call: the release must get past its DDL and fail on purpose, not on a typo.
    program = (
        "import sys, types\n"
        "class Anything:\n"
        "    def __getattr__(self, name): return lambda *a, **k: None\n"
        "alembic = types.ModuleType('alembic'); alembic.op = Anything()\n"
        "sys.modules['alembic'] = alembic\n"
        f"exec(compile({FAILING_MIGRATION!r}, 'm', 'exec'))\n"
        "try:\n"
        "    upgrade()\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert "drill: this migration fails" in result.stdout


def test_children_are_read_from_proc_with_their_command_names() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert (child.pid, "sleep") in children_of(os.getpid())
        assert all(pid != os.getpid() for pid, _ in children_of(os.getpid()))
    finally:
        child.kill()
        child.wait()
