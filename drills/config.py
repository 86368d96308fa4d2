"""Drill 5, bad configuration: every variable the service and the deploy read, made wrong.

Two places must refuse a bad value, each in one line that names the variable:

- the container itself (the real image, run with the prod hardening: read-only root,
  every capability dropped, no new privileges, no network): it must exit non-zero within
  5 s. A valid configuration runs beside the cases as the control: it must keep running,
  or the refusals would prove nothing.
- `ansible-playbook deploy.yml`, before it contacts any host. The inventory's only host
  is 127.0.0.1 on a closed port, so any task that reached it would show as UNREACHABLE;
  the control case (a valid env file) proves that it does get there.

A case that exits 0, takes longer, prints a traceback, prints several lines or does not
name the variable counts in `config.unclear_failures`.
"""

# Every command here is docker or ansible-playbook with arguments built by the drill.
# ruff: noqa: S603
# Bad values on purpose (keys, binds, paths inside the container), never used for real:
# ruff: noqa: S104, S105, S106, S108

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from drills.outcome import DrillContext, DrillOutcome
from harness import commands, secret_files
from harness.ports import free_port
from harness.repo import APP_UID, ROOT
from kit import console

DEADLINE = 5.0  # seconds a container may take to refuse its configuration
WAIT_LIMIT = 20  # seconds before a case that has not exited is stopped and counted
HARDENING = [
    "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges:true", "--network", "none",
]  # fmt: skip
SECRET_MOUNT = "/run/secrets/secret_key"
# What compose gives the app service in prod; each case changes one thing.
BASE_ENVIRON = {
    "APP_ENV": "prod",
    "DATABASE_URL": "sqlite:////data/app.db",
    "SECRET_KEY_FILE": SECRET_MOUNT,
    "LOG_LEVEL": "INFO",
}
# The sqlite service's command, as compose/compose.yaml renders it from the env file.
SERVE = ("python", "-m", "webapp", "db", "serve", "--backup-dir", "/backups")
GOOD_BACKUP = {"BACKUP_INTERVAL": "3600", "BACKUP_KEEP": "24"}
DRILL_HOST = "drillhost"


@dataclass(frozen=True)
class Case:
    """One bad setting: what changes, and the names the refusal may use for it."""

    variable: str
    label: str
    environ: dict[str, str | None] = field(default_factory=dict)  # None: removed
    service: str = "app"  # "app": the image's CMD (Gunicorn); "sqlite": `db serve`
    backup: dict[str, str] = field(default_factory=dict)  # `db serve` argument values
    secret: str | None = None  # the mounted key file's text; None: a good key
    unreadable_secret: bool = False
    # Other spellings of the variable the one line may use instead (a CLI option).
    aliases: tuple[str, ...] = ()
    quick: bool = False  # part of the reduced run

    @property
    def title(self) -> str:
        return f"{self.service} {self.variable} {self.label}"


def container_cases() -> list[Case]:
    cases = [
        Case("DATABASE_URL", "missing", {"DATABASE_URL": None}, quick=True),
        Case("DATABASE_URL", "empty", {"DATABASE_URL": ""}),
        Case("DATABASE_URL", "postgresql URL", {"DATABASE_URL": "postgresql://db/app"}),
        Case("DATABASE_URL", "not a URL", {"DATABASE_URL": "/data/app.db"}),
        Case("DATABASE_URL", "in memory", {"DATABASE_URL": "sqlite://"}),
        Case("DATABASE_URL", "missing directory", {"DATABASE_URL": "sqlite:////nope/app.db"}),
        Case("DATABASE_URL", "query options", {"DATABASE_URL": "sqlite:////data/a.db?mode=ro"}),
        Case("APP_ENV", "missing", {"APP_ENV": None}, quick=True),
        Case("APP_ENV", "empty", {"APP_ENV": ""}),
        Case("APP_ENV", "'production'", {"APP_ENV": "production"}),
        Case("SECRET_KEY", "missing in prod", {"SECRET_KEY_FILE": None}, quick=True),
        Case("SECRET_KEY", "empty", {"SECRET_KEY_FILE": None, "SECRET_KEY": ""}),
        Case("SECRET_KEY", "too short", {"SECRET_KEY_FILE": None, "SECRET_KEY": "short"}),
        Case(
            "SECRET_KEY",
            "placeholder",
            {"SECRET_KEY_FILE": None, "SECRET_KEY": "change-me-" + "x" * 40},
        ),
        Case("SECRET_KEY", "beside SECRET_KEY_FILE", {"SECRET_KEY": "k" * 48}),
        Case("SECRET_KEY_FILE", "empty", {"SECRET_KEY_FILE": ""}),
        Case("SECRET_KEY_FILE", "no such file", {"SECRET_KEY_FILE": "/run/secrets/nope"}),
        Case("SECRET_KEY_FILE", "empty file", secret="\n", quick=True),
        Case("SECRET_KEY_FILE", "short key in file", secret="tooshort\n"),
        Case("SECRET_KEY_FILE", "placeholder in file", secret="CHANGE-ME-placeholder-key-00\n"),
        Case("SECRET_KEY_FILE", "unreadable by 10001", unreadable_secret=True),
        Case("SECRET_KEY_FILE", "not UTF-8", secret="\udcff" * 40),
        Case("LOG_LEVEL", "empty", {"LOG_LEVEL": ""}),
        Case("LOG_LEVEL", "'LOUD'", {"LOG_LEVEL": "LOUD"}, quick=True),
        Case("GUNICORN_WORKERS", "empty", {"GUNICORN_WORKERS": ""}),
        Case("GUNICORN_WORKERS", "'two'", {"GUNICORN_WORKERS": "two"}, quick=True),
        Case("GUNICORN_WORKERS", "0", {"GUNICORN_WORKERS": "0"}),
        Case("GUNICORN_WORKERS", "-1", {"GUNICORN_WORKERS": "-1"}),
        Case("GUNICORN_THREADS", "'4.5'", {"GUNICORN_THREADS": "4.5"}, quick=True),
        Case("GUNICORN_THREADS", "empty", {"GUNICORN_THREADS": ""}),
        Case("GUNICORN_TIMEOUT", "'30s'", {"GUNICORN_TIMEOUT": "30s"}, quick=True),
        Case("GUNICORN_TIMEOUT", "0", {"GUNICORN_TIMEOUT": "0"}),
        Case(
            "GUNICORN_GRACEFUL_TIMEOUT", "'abc'", {"GUNICORN_GRACEFUL_TIMEOUT": "abc"}, quick=True
        ),
        Case("GUNICORN_GRACEFUL_TIMEOUT", "empty", {"GUNICORN_GRACEFUL_TIMEOUT": ""}),
        Case("GUNICORN_MAX_REQUESTS", "'1e3'", {"GUNICORN_MAX_REQUESTS": "1e3"}, quick=True),
        Case("GUNICORN_BIND", "no port", {"GUNICORN_BIND": "0.0.0.0"}, quick=True),
        Case("GUNICORN_BIND", "port 99999", {"GUNICORN_BIND": "0.0.0.0:99999"}),
        Case("GUNICORN_RELOAD", "'yes'", {"GUNICORN_RELOAD": "yes"}),
        Case("GUNICORN_RELOAD", "1 in prod", {"GUNICORN_RELOAD": "1"}, quick=True),
        # The sqlite service: the same settings module, then its own arguments.
        Case("DATABASE_URL", "missing", {"DATABASE_URL": None}, service="sqlite", quick=True),
        Case("DATABASE_URL", "mysql URL", {"DATABASE_URL": "mysql://db/x"}, service="sqlite"),
        Case("LOG_LEVEL", "'verbose'", {"LOG_LEVEL": "verbose"}, service="sqlite"),
    ]
    # Compose turns an empty or missing BACKUP_* into its default, so only the form can
    # be wrong; the value reaches `db serve` as an option, which the message names.
    for variable, option, bad, quick in (
        ("BACKUP_INTERVAL", "--backup-interval", "hourly", True),
        ("BACKUP_INTERVAL", "--backup-interval", "0", False),
        ("BACKUP_INTERVAL", "--backup-interval", "-5", False),
        ("BACKUP_KEEP", "--keep", "0", True),
        ("BACKUP_KEEP", "--keep", "all", False),
    ):
        cases.append(
            Case(variable, repr(bad), service="sqlite", backup={variable: bad},
                 aliases=(option,), quick=quick)
        )  # fmt: skip
    return cases


def judge(case: Case, returncode: int | None, seconds: float, output: str) -> str | None:
    """Why the refusal is unclear, or None when it is one prompt line naming the variable."""
    lines = [line for line in output.splitlines() if line.strip()]
    if returncode is None:
        return f"still running after {seconds:.0f} s"
    if returncode == 0:
        return "exited 0: the bad value was accepted"
    if seconds > DEADLINE:
        return f"took {seconds:.1f} s to refuse (limit {DEADLINE:.0f} s)"
    if any("Traceback" in line for line in lines):
        return "printed a traceback"
    if len(lines) != 1:
        return f"printed {len(lines)} lines instead of one: {' | '.join(lines)[:200]!r}"
    if not any(name in lines[0] for name in (case.variable, *case.aliases)):
        return f"the line does not name {case.variable}: {lines[0][:200]!r}"
    return None


def docker_time(stamp: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds, cut to what datetime can hold."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction + '000000')[:6]}+00:00")


def docker(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return commands.docker(*argv, check=False, timeout=timeout)


@dataclass
class Keys:
    """Key files for the mounts: a good one, and one per case that brings its own."""

    directory: Path
    good: Path = field(init=False)

    def __post_init__(self) -> None:
        self.good = self.write("good", secret_files.new_key() + "\n")

    def write(self, name: str, text: str, *, owner: int = APP_UID) -> Path:
        data = text.encode("utf-8", "surrogateescape")
        return secret_files.store(self.directory / f"key-{name}", data, owner=owner)

    def for_case(self, number: int, case: Case) -> Path:
        if case.unreadable_secret:
            return self.write(str(number), secret_files.new_key(), owner=0)
        if case.secret is not None:
            return self.write(str(number), case.secret)
        return self.good


def run_argv(case: Case, image: str, name: str, key: Path, label: str) -> list[str]:
    environ: dict[str, str | None] = {**BASE_ENVIRON, **case.environ}
    if case.service == "sqlite":
        environ.pop("SECRET_KEY_FILE")  # the data service never gets the key
        environ.update({k: v for k, v in case.environ.items() if k == "SECRET_KEY_FILE"})
    argv = ["run", "--detach", "--name", name, "--label", label, *HARDENING]
    argv += ["--volume", f"{key}:{SECRET_MOUNT}:ro"]
    for variable, value in environ.items():
        if value is not None:
            argv += ["--env", f"{variable}={value}"]
    argv.append(image)
    if case.service == "sqlite":
        backup = {**GOOD_BACKUP, **case.backup}
        argv += [*SERVE, "--backup-interval", backup["BACKUP_INTERVAL"]]
        argv += ["--keep", backup["BACKUP_KEEP"]]
    return argv


def try_case(case: Case, argv: list[str], name: str) -> str | None:
    """Start one case's container, wait for it (bounded), judge it; None when clear."""
    started = docker(*argv)
    if started.returncode != 0:
        return f"docker run failed: {started.stderr.strip()[-200:]}"
    deadline = time.monotonic() + WAIT_LIMIT
    state = ""
    while time.monotonic() < deadline:  # bounded: WAIT_LIMIT seconds of 0.2 s polls
        state = docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state in ("exited", "dead"):
            break
        time.sleep(0.2)
    fields = docker(
        "inspect", "--format", "{{.State.ExitCode}} {{.State.StartedAt}} {{.State.FinishedAt}}",
        name,
    ).stdout.split()  # fmt: skip
    output = docker("logs", name)
    text = output.stdout + output.stderr
    if state not in ("exited", "dead") or len(fields) != 3:
        return judge(case, None, WAIT_LIMIT, text)
    seconds = (docker_time(fields[2]) - docker_time(fields[1])).total_seconds()
    return judge(case, int(fields[0]), seconds, text)


@contextmanager
def labelled_containers(label: str) -> Iterator[None]:
    try:
        yield
    finally:
        listed = docker("ps", "--all", "--quiet", "--filter", f"label={label}").stdout.split()
        if listed:
            docker("rm", "--force", *listed)


def container_drill(context: DrillContext, outcome: DrillOutcome) -> tuple[int, int]:
    cases = [case for case in container_cases() if case.quick or not context.quick]
    keys = Keys(context.scratch)
    prefix = f"drills-config-{os.getpid()}"
    label = f"drills.config={os.getpid()}"
    unclear = 0
    with labelled_containers(label):
        control = f"{prefix}-control"
        control_argv = run_argv(Case("", "control"), context.image, control, keys.good, label)
        started = docker(*control_argv)
        began = time.monotonic()
        outcome.check(
            started.returncode == 0, f"the control container did not start: {started.stderr}"
        )
        jobs = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            for number, case in enumerate(cases):
                name = f"{prefix}-{number}"
                argv = run_argv(case, context.image, name, keys.for_case(number, case), label)
                jobs.append((case, pool.submit(try_case, case, argv, name)))
        for case, job in jobs:
            problem = job.result()
            if problem is not None:
                unclear += 1
                outcome.fail(f"container, {case.title}: {problem}")
        time.sleep(max(0.0, DEADLINE + 1 - (time.monotonic() - began)))
        state = docker("inspect", "--format", "{{.State.Status}}", control).stdout.strip()
        logs = docker("logs", control)
        outcome.check(
            state == "running",
            f"the valid prod configuration did not keep running ({state}): "
            f"{(logs.stdout + logs.stderr).strip()[-300:]!r}",
        )
    console.detail(f"{len(cases)} container cases, {unclear} unclear")
    return len(cases), unclear


@dataclass(frozen=True)
class DeployCase:
    """One bad deploy input: an env file line changed or removed, or a bad secret key."""

    variable: str
    label: str
    line: str | None = None  # the env file's line for `variable`; None: the line removed
    secret: str | None = None  # WEBAPP_SECRET_KEY on the controller; None: a good one
    keep_line: bool = False  # leave the env file as it is (a secret case)
    quick: bool = False

    @property
    def title(self) -> str:
        return f"deploy {self.variable} {self.label}"


def deploy_cases() -> list[DeployCase]:
    return [
        DeployCase("APP_ENV", "missing", quick=True),
        DeployCase("APP_ENV", "'staging'", "APP_ENV=staging", quick=True),
        DeployCase("APP_ENV", "quoted", 'APP_ENV="prod"'),
        DeployCase("LOG_LEVEL", "'LOUD'", "LOG_LEVEL=LOUD"),
        DeployCase("GUNICORN_WORKERS", "'two'", "GUNICORN_WORKERS=two", quick=True),
        DeployCase("GUNICORN_THREADS", "0", "GUNICORN_THREADS=0"),
        DeployCase("GUNICORN_TIMEOUT", "'30s'", "GUNICORN_TIMEOUT=30s"),
        DeployCase("GUNICORN_GRACEFUL_TIMEOUT", "'-1'", "GUNICORN_GRACEFUL_TIMEOUT=-1"),
        DeployCase("WEBAPP_PORT", "80800", "WEBAPP_PORT=80800"),
        DeployCase("BACKUP_INTERVAL", "'hourly'", "BACKUP_INTERVAL=hourly"),
        DeployCase("BACKUP_KEEP", "0", "BACKUP_KEEP=0"),
        DeployCase("COMPOSE_FILE", "a missing file", "COMPOSE_FILE=compose/nope.yaml"),
        # Read by Compose or the engine on the host, where a bad one fails the release.
        DeployCase("APP_MEMORY", "'lots'", "APP_MEMORY=lots"),
        DeployCase("APP_CPUS", "'many'", "APP_CPUS=many"),
        DeployCase("SQLITE_HEALTHCHECK_INTERVAL", "without unit", "SQLITE_HEALTHCHECK_INTERVAL=5"),
        DeployCase("WEBAPP_BIND_ADDRESS", "a host name", "WEBAPP_BIND_ADDRESS=localhost"),
        DeployCase("LOG_MAX_FILES", "'abc'", "LOG_MAX_FILES=abc"),
        DeployCase("WEBAPP_SECRET_KEY", "too short", secret="short", keep_line=True, quick=True),
        DeployCase("WEBAPP_SECRET_KEY", "unset", secret="", keep_line=True),
    ]


def edited_env_file(original: str, case: DeployCase) -> str:
    """`original` with the case's variable set to its bad line (or removed)."""
    if case.keep_line:
        return original
    lines = [
        line for line in original.splitlines() if not re.match(rf"{case.variable}=", line.strip())
    ]
    if case.line is not None:
        lines.append(case.line)
    return "\n".join(lines) + "\n"


def judge_deploy(case: DeployCase | None, returncode: int, output: str) -> str | None:
    """Why a refusal is unclear (None: refused, naming the variable, no host touched).

    The control (case None) must do the opposite: pass the checks and reach the host.
    """
    touched = f"[{DRILL_HOST}]" in output or "UNREACHABLE" in output
    if case is None:
        return None if touched else f"the valid inputs never reached the host: {output[-300:]!r}"
    if returncode == 0:
        return "the deploy succeeded with the bad value"
    if touched:
        return "the play contacted the host before refusing"
    failed_at = output.find("fatal:")
    if failed_at < 0:
        return f"no failed task in the output: {output[-300:]!r}"
    if case.variable not in output[failed_at:]:
        return f"the refusal does not name {case.variable}: {output[failed_at:][:300]!r}"
    return None


def playbook_command() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.is_file() else shutil.which("ansible-playbook")
    if found is None:
        raise RuntimeError("ansible-playbook: command not found; run the drills with nox")
    return found


def deploy_checkout(root: Path, env_text: str) -> Path:
    """A repository view for one case: its own .env.prod, the real compose/, kit/, build."""
    root.mkdir(parents=True)
    (root / ".env.prod").write_text(env_text)
    for name in ("compose", "kit"):
        (root / name).symlink_to(ROOT / name)
    (root / "build" / "deploy").mkdir(parents=True)
    shutil.copy2(ROOT / "build" / "image.json", root / "build" / "image.json")
    heads = ROOT / "build" / "deploy" / "schema-heads.json"
    if heads.is_file():  # saves a container start per case
        shutil.copy2(heads, root / "build" / "deploy" / "schema-heads.json")
    return root


def try_deploy(case: DeployCase | None, checkout: Path, inventory: Path) -> str | None:
    environ = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_TIMEOUT": "5"}
    environ["WEBAPP_SECRET_KEY"] = secret_files.new_key()
    if case is not None and case.secret is not None:
        environ["WEBAPP_SECRET_KEY"] = case.secret
    command = [
        playbook_command(), "-i", str(inventory), "deploy.yml", "-e", "env=prod",
        "-e", f"webapp_repo_dir={checkout}",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command, cwd=ROOT / "ansible", env=environ, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "ansible-playbook ran over 180 s"
    output = result.stdout + result.stderr
    (checkout / "ansible.log").write_text(output)
    return judge_deploy(case, result.returncode, output)


def deploy_drill(context: DrillContext, outcome: DrillOutcome) -> tuple[int, int]:
    cases = [case for case in deploy_cases() if case.quick or not context.quick]
    inventory = context.scratch / "inventory.ini"
    inventory.write_text(
        f"[prod]\n{DRILL_HOST} ansible_host=127.0.0.1 ansible_port={free_port()} "
        "ansible_user=root\n"
    )
    original = (ROOT / ".env.prod").read_text()
    runs: list[tuple[DeployCase | None, Path]] = [
        (None, deploy_checkout(context.scratch / "deploy-control", original))
    ]
    for number, case in enumerate(cases):
        text = edited_env_file(original, case)
        runs.append((case, deploy_checkout(context.scratch / f"deploy-{number}", text)))
    unclear = 0
    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [(bad, pool.submit(try_deploy, bad, root, inventory)) for bad, root in runs]
    for bad, job in jobs:
        problem = job.result()
        if bad is None:
            outcome.check(problem is None, f"deploy control: {problem}")
        elif problem is not None:
            unclear += 1
            outcome.fail(f"{bad.title}: {problem}")
    console.detail(f"{len(cases)} deploy cases, {unclear} unclear")
    return len(cases), unclear


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="config")
    with console.step("Bad configuration: container refusals"):
        container_count, container_unclear = container_drill(context, outcome)
    with console.step("Bad configuration: deploy refusals before any host"):
        deploy_count, deploy_unclear = deploy_drill(context, outcome)
    outcome.figures["config.cases"] = container_count + deploy_count
    outcome.figures["config.unclear_failures"] = container_unclear + deploy_unclear
    outcome.notes.append(
        f"{container_count} container cases (real image, read-only, cap-drop ALL, no network; "
        f"exit within {DEADLINE:.0f} s, one line naming the variable) and {deploy_count} "
        "deploy cases (deploy.yml against an unreachable host: refused before contacting it)"
    )
    outcome.notes.append(
        "BACKUP_INTERVAL and BACKUP_KEEP reach the sqlite service as command options: the "
        "container names the option (--backup-interval, --keep); the deploy names the variable"
    )
    return outcome
