"""Failed deploys on real SSH test hosts: the old release must come back whole, with its data.

Four releases go wrong on purpose, each derived from the current build:
1. its migration creates a table, deletes every note, then raises;
2. its migration breaks expand-then-contract: it renames a column the running release
   reads, so no release that maps it may serve (the new one never gets traffic);
3. its app crashes at start, so the container restarts in a loop;
4. a good code change, but the last host's SSH is cut while `compose up` runs: sshd stops
   answering and the deploy's connections are dropped, at a random moment.

After each one, every host must run one whole release (both services on the same image,
the schema that image expects, /version agreeing) and every note written before must be
there unchanged. Quick mode: one host; full: two, so the rollout's stop is shown too.
"""

from __future__ import annotations

import os
import random
import signal
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drills import host_lab
from drills.outcome import DrillContext, DrillOutcome
from harness.commands import docker
from harness.hosts import Host
from harness.lab import Lab, Release
from harness.playbook import Event, Play
from harness.repo import HOST_APP_DIR, HOST_COMPOSE
from kit import console

# Seconds the deploy may wait for a release to turn healthy (the role's default is 180).
# Only a bound: the deploy notices a crash loop or an unhealthy container by itself
# (webapp_crash_restarts), long before this; a good release on a busy machine, and the
# rollback's old release, must still fit in it.
WAIT_TIMEOUT_S = 90
# The SSH cut lands this many seconds after the compose step starts (random, bounded).
CUT_WINDOW_S = (0.5, 6.0)
# Bounds for the waits around the cut.
CUT_TASK_WAIT_S = 400
SETTLE_S = 180
NOTES_PER_HOST = 6
# The deploy's job on a host: Ansible's async wrapper lives until the job ends.
DEPLOY_JOB_PROCESSES = "[a]sync_wrapper\\|[d]ocker compose\\|[d]ocker-compose"
MAX_PAGES = 20  # of 100 notes: far more than the drill writes
# The cue: the task that starts bringing the release up as a job detached from SSH.
UP_TASK = "detached from the SSH session"
# Counts the table the failing migration made, read-only, inside the sqlite service.
LEFTOVER_PROBE = (
    "python -c \"import sqlite3; print(sqlite3.connect('file:/data/app.db?mode=ro', uri=True)"
    ".execute('SELECT count(*) FROM sqlite_master WHERE name = ?', ('drill_half_done',))"
    '.fetchone()[0])"'
)


def drill_migration(summary: str, upgrade: str, downgrade: str) -> str:
    """A revision 0002 after the schema's 0001, as a drill release's migration file."""
    return f'''"""A drill release: {summary}

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}

def downgrade() -> None:
{downgrade}
'''


FAILING_MIGRATION = drill_migration(
    "its migration half-runs, then fails.",
    """    op.create_table("drill_half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("DELETE FROM notes")
    raise RuntimeError("drill: this migration fails after creating a table and deleting notes")
""",
    """    op.drop_table("drill_half_done")""",
)

# Contract without expand: the release renames a column that the running release (and,
# here, its own code too) still reads. Every release that maps the column stops being
# ready the moment the migration runs, so the switch never happens.
EARLY_CONTRACT = drill_migration(
    "it renames a column every release still reads.",
    """    op.execute("ALTER TABLE notes RENAME COLUMN body TO body_gone")
""",
    """    op.execute("ALTER TABLE notes RENAME COLUMN body_gone TO body")""",
)

CRASH_AT_START = (
    "USER root\n"
    "RUN printf '\\nraise RuntimeError(\"drill: this release crashes at start\")\\n' "
    ">> /app/webapp/wsgi.py\n"
    "USER 10001:10001"
)


@dataclass(frozen=True)
class HostState:
    """What one host runs, read on the host itself after a deploy."""

    app_image: str
    sqlite_image: str
    schema: str  # `db current` in the sqlite service
    reported_schema: str  # /version's schema_revision
    ready: bool  # /readyz answered 200


def mix_reason(state: HostState, expected_schema: dict[str, str]) -> str | None:
    """Why `state` is not one whole release of those in `expected_schema`, or None."""
    if state.app_image != state.sqlite_image:
        return f"app runs {state.app_image[:19]} but sqlite runs {state.sqlite_image[:19]}"
    if state.app_image not in expected_schema:
        return f"runs {state.app_image[:19]}, neither the old nor the new release"
    wanted = expected_schema[state.app_image]
    if state.schema != wanted:
        return (
            f"the database is at schema {state.schema}, "
            f"its release {state.app_image[:19]} expects {wanted}"
        )
    if state.reported_schema != state.schema:
        return (
            f"/version reports schema {state.reported_schema}, the database is at {state.schema}"
        )
    return None


def lost_notes(written: dict[int, dict[str, Any]], found: list[dict[str, Any]]) -> list[int]:
    """IDs of notes written before that are now missing or changed."""
    now = {note["id"]: note for note in found}
    fields = ("title", "body", "tags", "version")
    return sorted(
        note_id
        for note_id, note in written.items()
        if note_id not in now or any(now[note_id].get(f) != note.get(f) for f in fields)
    )


def task_starts(events: list[Event], task: str) -> int:
    """How many times the play has started a task whose name holds `task` (once per host
    batch), from Ansible's task-start events."""
    return sum(
        1
        for event in list(events)
        if event.get("event") == "playbook_on_task_start"
        and task in str(event.get("event_data", {}).get("task", ""))
    )


SSH_SESSION_NAMES = frozenset({"sshd-session", "sshd"})


def ssh_sessions(children: list[tuple[int, str]]) -> list[int]:
    """PIDs of sshd's per-connection processes among (pid, command name) children of sshd.

    The deploy's async `compose up` is a child of sshd too (re-parented to the host's PID 1),
    and must survive the cut: only sshd's own processes are connections. OpenSSH 9.8 and
    later (Debian 13) run each connection as `sshd-session`; older ones as `sshd`.
    """
    return [pid for pid, name in children if name in SSH_SESSION_NAMES]


def children_of(parent: int) -> list[tuple[int, str]]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ')'.
        name = text[text.index("(") + 1 : text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        if ppid == parent:
            found.append((int(stat.parent.name), name))
    return found


class SshCut:
    """Stop a test host's sshd (its PID 1) and drop its open connections; undo after."""

    def __init__(self, host: Host) -> None:
        inspected = docker("inspect", "-f", "{{.State.Pid}}", host.container)
        self.pid = int(inspected.stdout.strip())

    def cut(self) -> int:
        # A stopped sshd accepts no new session (the kernel queues the TCP connection; the
        # SSH banner never comes, so the client times out), and killing its per-connection
        # processes drops the deploy's open ones.
        os.kill(self.pid, signal.SIGSTOP)
        sessions = ssh_sessions(children_of(self.pid))
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        return len(sessions)

    def restore(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


class FaultDrill:
    def __init__(self, lab: Lab, outcome: DrillOutcome) -> None:
        self.lab = lab
        self.outcome = outcome
        self.written: dict[str, dict[int, dict[str, Any]]] = {h.name: {} for h in lab.hosts}
        self.expected_schema: dict[str, str] = {}
        self.cases = 0
        self.lost = 0
        self.mixed = 0

    def write_notes(self, label: str) -> None:
        for host in self.lab.hosts:
            for number in range(NOTES_PER_HOST):
                body = {
                    "title": f"{label} {number}",
                    "body": f"kept across {label}",
                    "tags": [label],
                }
                status, note = self.lab.http(host, "POST", "/api/notes", body)
                if self.outcome.check(
                    status == 201, f"{host.name}: writing a note before {label} answered {status}"
                ):
                    self.written[host.name][note["id"]] = note

    def all_notes(self, host: Host) -> list[dict[str, Any]] | None:
        """Every note the host serves, page by page; None when listing fails."""
        found: list[dict[str, Any]] = []
        path = "/api/notes?limit=100"
        for _ in range(MAX_PAGES):
            status, page = self.lab.http(host, "GET", path)
            if status != 200 or not page:
                return None
            found += page["items"]
            if page.get("next_cursor") is None:
                return found
            path = f"/api/notes?limit=100&cursor={urllib.parse.quote(page['next_cursor'])}"
        return None

    def state(self, host: Host) -> HostState:
        status, version = self.lab.http(host, "GET", "/version")
        return HostState(
            app_image=self.lab.service_image(host, "app"),
            sqlite_image=self.lab.service_image(host, "sqlite"),
            schema=self.lab.schema(host),
            reported_schema=str((version or {}).get("schema_revision", "unreachable"))
            if status == 200
            else "unreachable",
            ready=self.lab.http(host, "GET", "/readyz")[0] == 200,
        )

    def judge(self, case: str, allowed: dict[str, list[Release]]) -> None:
        """Every host whole, on a release `allowed` for it, serving, with all its notes."""
        for host in self.lab.hosts:
            state = self.state(host)
            releases = allowed[host.name]
            expected = {r.image_id: self.expected_schema[r.image_id] for r in releases}
            reason = mix_reason(state, expected)
            if reason is not None:
                self.mixed += 1
                names = " or ".join(r.name for r in releases)
                self.outcome.fail(
                    f"{case}: {host.name} is not one whole release ({names}): {reason}"
                )
            self.outcome.check(
                state.ready, f"{case}: {host.name} does not answer /readyz with 200"
            )
            found = self.all_notes(host)
            if found is None:
                self.outcome.fail(f"{case}: {host.name} does not list its notes; data not checked")
                continue
            lost = lost_notes(self.written[host.name], found)
            self.lost += len(lost)
            self.outcome.check(
                not lost,
                f"{case}: {host.name} lost or changed {len(lost)} of "
                f"{len(self.written[host.name])} notes written before (ids {lost[:10]})",
            )

    def rolled_back(self, case: str, bad: Release, play: Play) -> None:
        """The play failed, named the host and the rollback; no later host was touched."""
        self.cases += 1
        first = self.lab.hosts[0]
        v1 = self.lab.releases["v1"]
        message = play.flat()
        self.outcome.check(play.returncode != 0, f"{case}: the deploy of {bad.image} passed")
        self.outcome.check(
            f"Deploy of {bad.image} to {first.name} FAILED at" in message
            and f"ROLLED BACK to {v1.image}" in message,
            f"{case}: the play did not report the rollback on {first.name}; see {self.lab.logs}",
        )
        self.judge(case, {host.name: [v1] for host in self.lab.hosts})
        for host in self.lab.hosts[1:]:
            audit = self.lab.sh(host, f"cat {HOST_APP_DIR}/audit.log")
            self.outcome.check(
                bad.image not in audit,
                f"{case}: the rollout went on to {host.name} after a failure",
            )

    def failing_migration(self) -> None:
        with console.step("Case 1: a release whose migration deletes notes, then raises"):
            bad = self.lab.derive(
                "migration",
                "COPY 0002_drill_half_done.py /app/webapp/db/migrations/versions/",
                {"0002_drill_half_done.py": FAILING_MIGRATION},
            )
            self.write_notes("before-migration")
            play = self.lab.deploy(bad, "-e", f"webapp_wait_timeout={WAIT_TIMEOUT_S}")
            self.rolled_back("failing migration", bad, play)
            for host in self.lab.hosts[:1]:
                leftover = self.lab.sh(host, f"{HOST_COMPOSE} exec -T sqlite {LEFTOVER_PROBE}")
                self.outcome.check(
                    leftover == "0",
                    f"failing migration: {host.name} keeps the half-made table drill_half_done "
                    f"({leftover!r}); the migration was not undone",
                )

    def early_contract(self) -> None:
        with console.step("Case 2: a release that breaks expand-then-contract (renames a column)"):
            bad = self.lab.derive(
                "contract",
                "COPY 0002_drill_contract.py /app/webapp/db/migrations/versions/",
                {"0002_drill_contract.py": EARLY_CONTRACT},
            )
            self.write_notes("before-contract")
            play = self.lab.deploy(bad, "-e", f"webapp_wait_timeout={WAIT_TIMEOUT_S}")
            self.outcome.check(
                "lacks notes.body" in play.flat(),
                "early contract: the failed deploy did not name the missing column; "
                f"see {self.lab.logs}",
            )
            self.rolled_back("early contract", bad, play)

    def crash_loop(self) -> None:
        with console.step("Case 3: a release whose app crashes at start, in a restart loop"):
            bad = self.lab.derive("crash", CRASH_AT_START, {})
            self.write_notes("before-crash")
            play = self.lab.deploy(bad, "-e", f"webapp_wait_timeout={WAIT_TIMEOUT_S}")
            self.rolled_back("crash loop", bad, play)

    def ssh_cut(self, rng: random.Random) -> None:
        with console.step("Case 4: SSH to the last host cut while compose brings the release up"):
            v1 = self.lab.releases["v1"]
            v2 = self.lab.derive(
                "v2", "COPY change.txt /app/drill-change.txt", {"change.txt": "x\n"}
            )
            self.expected_schema[v2.image_id] = self.expected_schema[v1.image_id]
            self.write_notes("before-cut")
            target = self.lab.hosts[-1]
            delay = rng.uniform(*CUT_WINDOW_S)
            play, dropped, waited = self._deploy_and_cut(v2, target, delay)
            self.cases += 1
            if waited is None:
                self.outcome.fail(
                    f"ssh cut: the deploy never reached `{UP_TASK}` on {target.name}; "
                    f"see {self.lab.logs}"
                )
            console.detail(
                f"cut {delay:.1f} s into the compose step, {dropped} session(s) dropped"
            )
            self.outcome.notes.append(
                f"SSH cut on {target.name} {delay:.1f} s into `compose up`; exit {play.returncode}"
            )
            self.outcome.check(
                play.returncode != 0
                and "UNREACHABLE" in play.output
                and target.name in play.output,
                f"ssh cut: the play did not stop with {target.name} UNREACHABLE "
                f"(exit {play.returncode}); see {self.lab.logs}",
            )
            self._settle(target)
            allowed = {host.name: [v2] for host in self.lab.hosts[:-1]}
            allowed[target.name] = [v1, v2]
            self.judge("ssh cut", allowed)
            landed = self.lab.service_image(target, "app")
            on = (
                "the new"
                if landed == v2.image_id
                else "the old"
                if landed == v1.image_id
                else "no"
            )
            record = self.lab.sh(target, f"cat {HOST_APP_DIR}/releases.json")
            recorded = "new" if v2.image_id in record.split('"previous"')[0] else "old"
            locked = self.lab.sh(target, f"test -d {HOST_APP_DIR}/deploy.lock && echo yes")
            self.outcome.notes.append(
                f"After the cut {target.name} runs {on} release; its releases.json names the "
                f"{recorded} one; the deploy lock is {'left' if locked else 'gone'} "
                "(a left lock makes the next deploy stop and name it)."
            )
            self.roll_back_after_cut(target, v1, v2)

    def roll_back_after_cut(self, target: Host, v1: Release, v2: Release) -> None:
        """The operator's way back: remove the left lock, `rollback.yml`; all on v1 again."""
        self.lab.sh(target, f"rm -rf {HOST_APP_DIR}/deploy.lock")
        play = self.lab.rollback(v2)
        self.outcome.check(
            play.returncode == 0,
            f"ssh cut: rollback.yml after the cut failed (exit {play.returncode}); "
            f"see {self.lab.logs}",
        )
        self.judge("rollback after the cut", {host.name: [v1] for host in self.lab.hosts})

    def _deploy_and_cut(
        self, release: Release, target: Host, delay: float
    ) -> tuple[Play, int, float | None]:
        lab = self.lab
        started: list[Event] = []
        running = lab.start(
            "deploy.yml",
            *lab.deploy_args(release, "-e", f"webapp_wait_timeout={WAIT_TIMEOUT_S}"),
            label="deploy-ssh-cut",
            on_event=started.append,
        )
        cut = SshCut(target)
        dropped, waited = 0, None
        began = time.monotonic()
        try:
            # The compose task starts once per host; the last host's start is the cue.
            while time.monotonic() - began < CUT_TASK_WAIT_S and not running.done():
                if task_starts(started, UP_TASK) >= len(lab.hosts):
                    waited = time.monotonic() - began
                    time.sleep(delay)
                    dropped = cut.cut()
                    break
                time.sleep(0.2)
            play = running.wait()
        finally:
            cut.restore()
        return play, dropped, waited

    def _settle(self, host: Host) -> None:
        """Wait (bounded) for the host's own `compose up`, which the cut did not stop."""
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            busy = self.lab.sh(host, f"ps -eo args | grep -c '{DEPLOY_JOB_PROCESSES}'")
            if busy == "0" and self.lab.http(host, "GET", "/readyz")[0] == 200:
                return
            time.sleep(2)


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="deploy_faults")
    count = 1 if context.quick else 2
    seed = int(time.time())
    outcome.notes.append(f"{count} host(s); random seed {seed}")
    with host_lab.running(context, "deploy_faults", count) as lab:
        drill = FaultDrill(lab, outcome)
        try:
            with console.step(f"First deploy of {context.image} to {count} host(s)"):
                first = lab.deploy(lab.releases["v1"])
            if not outcome.check(
                first.returncode == 0,
                f"the first deploy failed (exit {first.returncode}); see {lab.logs}",
            ):
                return outcome
            v1 = lab.releases["v1"]
            drill.expected_schema[v1.image_id] = lab.schema(lab.hosts[0])
            drill.write_notes("first")
            drill.failing_migration()
            drill.early_contract()
            drill.crash_loop()
            drill.ssh_cut(random.Random(seed))  # noqa: S311 (a moment, not a secret)
        finally:
            outcome.figures.update(
                {
                    "deploy_faults.cases": drill.cases,
                    "deploy_faults.data_lost": drill.lost,
                    "deploy_faults.mixed_release_hosts": drill.mixed,
                }
            )
    return outcome
