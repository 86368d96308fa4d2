"""ansible-playbook runs for the tests, drills and bench, with results from Ansible itself.

Each run goes through ansible-runner: Ansible prints what an operator would see (kept
whole in `Play.output` and in a log file), and its event callback reports every task on
every host and the final per-host counts, which `Play` answers from. Nothing here reads
the recap or the task lines back with a pattern.

    play = playbook.start("deploy.yml", "-e", "env=prod", inventory=path, env=extra).wait()
    assert play.returncode == 0 and play.changed() == {"web1": 0, "web2": 0}
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from harness.repo import ANSIBLE_DIR

Event = dict[str, Any]
# A failed task, an unreachable host, a finished task: the events that say a task ran.
RAN = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}
# Every task's end on a host: a skipped task costs its `when` and a line of output too.
ENDED = RAN | {"runner_on_skipped"}


def bin_dir() -> Path:
    """The directory of this interpreter's ansible-playbook (the dev venv's)."""
    found = Path(sys.executable).parent / "ansible-playbook"
    if found.is_file():
        return found.parent
    which = shutil.which("ansible-playbook")
    if which is None:
        raise RuntimeError("ansible-playbook: command not found; run this through nox")
    return Path(which).parent


def base_env(secret: str | None = None) -> dict[str, str]:
    """The variables every harness run sets: no colours, a short SSH timeout, the key."""
    env = {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_TIMEOUT": "10",
        "PATH": f"{bin_dir()}:{os.environ.get('PATH', '')}",
    }
    if secret is not None:
        env["WEBAPP_SECRET_KEY"] = secret
    return env


@dataclass
class Play:
    """One finished ansible-playbook run."""

    returncode: int
    output: str
    events: list[Event] = field(default_factory=list)
    # Ansible's own final counts: {"ok": {host: n}, "changed": {...}, "failures": ...}.
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    # Where the output was kept, if it was.
    log: Path | None = None

    def flat(self) -> str:
        """The output with its line breaks folded, for matching messages Ansible wraps."""
        return " ".join(self.output.split())

    def hosts(self) -> set[str]:
        return set(self.stats.get("processed", {}))

    def changed(self) -> dict[str, int]:
        """Tasks that changed something, per host the play reached or tried to."""
        changed = self.stats.get("changed", {})
        return {host: int(changed.get(host, 0)) for host in sorted(self.hosts())}

    def failed(self) -> dict[str, int]:
        failures = self.stats.get("failures", {})
        return {host: int(failures.get(host, 0)) for host in sorted(self.hosts())}

    def unreachable(self) -> set[str]:
        return {host for host, n in self.stats.get("dark", {}).items() if n}

    def ran(self, task: str, role: str = "webapp") -> set[str]:
        """Hosts on which `role`'s task named `task` ran (any result but skipped)."""
        return {
            str(data["host"])
            for data in self._task_events(RAN)
            if data.get("task") == task and data.get("role", "") == role
        }

    def results(self, task: str) -> dict[str, dict[str, Any]]:
        """Each host's result of the task named `task` (the last one, if it ran twice)."""
        return {
            str(data["host"]): dict(data.get("res") or {})
            for data in self._task_events(RAN)
            if data.get("task") == task
        }

    def shipped(self) -> list[int]:
        """Bytes of the image archive shipped to each host, in the order hosts got it."""
        facts = self.results("Note the size of the archive.")
        return [int(res["ansible_facts"]["webapp_archive"]["bytes"]) for res in facts.values()]

    def task_seconds(self) -> dict[str, tuple[int, float]]:
        """Per task file (`ship.yml`, or the playbook for its own tasks): how many tasks
        ended on any host and the seconds Ansible timed them, summed over hosts."""
        out: dict[str, tuple[int, float]] = {}
        for data in self._task_events(ENDED):
            # task_path is FILE:LINE
            where = Path(str(data.get("task_path") or data.get("playbook") or "?")).name
            where = where.split(":")[0]
            count, seconds = out.get(where, (0, 0.0))
            out[where] = (count + 1, seconds + float(data.get("duration") or 0))
        return out

    def _task_events(self, kinds: set[str]) -> list[dict[str, Any]]:
        return [event.get("event_data", {}) for event in self.events if event["event"] in kinds]


class Running:
    """A play started in the background; `wait()` gives its `Play`."""

    def __init__(
        self,
        playbook: str,
        args: tuple[str, ...],
        *,
        inventory: Path,
        env: Mapping[str, str],
        timeout: float,
        log: Path | None,
        on_event: Callable[[Event], None] | None,
        project: Path,
    ) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="harness-play-")
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._on_event = on_event
        self._cancel = threading.Event()
        self._log = log
        self._started = time.monotonic()
        self._thread, self._runner = ansible_runner.run_async(
            private_data_dir=self._scratch.name,
            project_dir=str(project),
            playbook=playbook,
            inventory=str(inventory),
            cmdline=shlex.join(args),
            envvars=dict(env),
            quiet=True,
            timeout=int(timeout),
            # The key travels in the environment only: no env/ files in the scratch dir.
            suppress_env_files=True,
            event_handler=self._event,
            cancel_callback=self._cancel.is_set,
        )

    def _event(self, event: Event) -> bool:
        with self._lock:
            self._events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        return True

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> Play:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.cancel()
            self._thread.join()
        try:
            with self._runner.stdout as stdout:
                output = stdout.read().replace("\r\n", "\n")
            stats = self._runner.stats or {}
            returncode = self._runner.rc
        finally:
            self._scratch.cleanup()
        if self._runner.status in ("timeout", "canceled"):
            output += f"\n(harness: the play was stopped: {self._runner.status})\n"
        play = Play(
            returncode=int(returncode),
            output=output,
            events=self.events(),
            stats={key: dict(value) for key, value in stats.items()},
            seconds=time.monotonic() - self._started,
            log=self._log,
        )
        if self._log is not None:
            self._log.parent.mkdir(parents=True, exist_ok=True)
            self._log.write_text(play.output)
        return play


def start(
    playbook: str,
    *args: str,
    inventory: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
    log: Path | None = None,
    on_event: Callable[[Event], None] | None = None,
    project: Path = ANSIBLE_DIR,
) -> Running:
    """Start `ansible-playbook -i INVENTORY PLAYBOOK ARGS` from `project` (ansible/, where
    ansible.cfg applies) in the background.

    `env` goes on top of this process's environment; `on_event` sees each of Ansible's
    events as it happens (from the runner's thread).
    """
    merged = {**base_env(), **(env or {})}
    return Running(
        playbook, args, inventory=inventory, env=merged, timeout=timeout, log=log,
        on_event=on_event, project=project,
    )  # fmt: skip
