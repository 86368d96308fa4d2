"""The developer's entry point: lint, test, build, run and ship the notes service.

`nox --list` shows every session. Each one installs its tools from the hash-pinned
lock files in requirements/, so a session behaves the same on a laptop and in CI.
Sessions that drive Docker or Ansible keep their logic in the `kit` package; the
functions here only wire arguments through.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "test"]

PYTHON = "3.11"
APP_LOCK = "requirements/app.txt"
DEV_LOCK = "requirements/dev.txt"
LINT_PATHS = [
    "webapp",
    "tests",
    "kit",
    "harness",
    "bench",
    "drills",
    "noxfile.py",
    "gunicorn.conf.py",
    "ansible/roles/webapp/files",
]


def install_dev_tools(session: nox.Session) -> None:
    """Install the pinned tool chain, then the project itself without re-resolving it."""
    session.install("--require-hashes", "-r", DEV_LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style, formatting, types, YAML and the Ansible roles. Posargs go to `ruff check`."""
    install_dev_tools(session)
    session.run("ruff", "check", *LINT_PATHS, *session.posargs)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("mypy", "webapp", "kit", "harness", "bench", "drills", "tests", "noxfile.py")
    session.run("yamllint", "--strict", ".")
    # From ansible/, so that ansible.cfg (roles path, inventory) applies as in a real run.
    with session.chdir("ansible"):
        session.run("ansible-lint", "--profile", "production", "--offline")


@nox.session(python=PYTHON)
def test(session: nox.Session) -> None:
    """Run the whole test suite with coverage. Posargs go to pytest, e.g. `-- -m "not deploy"`."""
    install_dev_tools(session)
    session.run(
        "pytest",
        "--cov",
        "--cov-report=term",
        "--cov-report=xml:build/coverage.xml",
        *session.posargs,
    )


# The kit needs only the standard library (and pip, for the wheelhouse), so these
# sessions install nothing: a warm `nox -s build` is docker's cache check and little else.
@nox.session(python=PYTHON, default=False)
def build(session: nox.Session) -> None:
    """Build the image offline: base image, wheelhouse, webapp:<version>-<sha>, image.json."""
    session.run("python", "-m", "kit", "build", *session.posargs)


@nox.session(python=PYTHON, default=False)
def up(session: nox.Session) -> None:
    """Build if needed, start the dev stack (or `-- prod`), wait until healthy, print its URL."""
    if len(session.posargs) > 1 or session.posargs[:1] not in ([], ["dev"], ["prod"]):
        session.error("Usage: nox -s up [-- dev|prod]")
    session.run("python", "-m", "kit", "up", *session.posargs)


@nox.session(python=PYTHON, default=False)
def down(session: nox.Session) -> None:
    """Stop the dev stack (or `-- prod`), keeping its data; `-- prod --volumes` deletes it."""
    environments = [arg for arg in session.posargs if arg in ("dev", "prod")]
    flags = [arg for arg in session.posargs if arg not in environments]
    if len(environments) > 1 or flags not in ([], ["--volumes"]):
        session.error("Usage: nox -s down [-- dev|prod] [--volumes]")
    session.run("python", "-m", "kit", "down", *environments, *flags)


@nox.session(python=PYTHON, venv_backend="none")
def lock(session: nox.Session) -> None:
    """Re-resolve requirements/*.in into hash-pinned lock files (needs `uv` on PATH), and
    the image's SQLite packages into requirements/sqlite.lock (needs `gpgv`)."""
    for name in ("app", "dev"):
        # Extras stay in the lock (`coverage[toml]==…`): pip's hash-checking mode takes an
        # extra a dependency asks for as a requirement of its own, and an unpinned one
        # fails the install as soon as a newer release is published.
        session.run(
            "uv", "pip", "compile", "--universal", "--python-version", PYTHON,
            "--generate-hashes", "--no-strip-extras", "--quiet", *session.posargs,
            f"requirements/{name}.in", "-o", f"requirements/{name}.txt",
        )  # fmt: skip
    session.run("python3", "-m", "kit.debs", "lock", external=True)


def run_playbook(session: nox.Session, *, playbook: str, usage: str) -> None:
    """Run ansible/PLAYBOOK for the environment named first in posargs; the rest go through."""
    if not session.posargs or session.posargs[0].startswith("-"):
        session.error(f"Usage: {usage}")
    environment, *extra = session.posargs
    install_dev_tools(session)
    session.chdir("ansible")
    session.run("ansible-playbook", playbook, "-e", f"env={environment}", *extra)


@nox.session(python=PYTHON, default=False)
def deploy(session: nox.Session) -> None:
    """Deploy the built image to an environment's hosts: `-- prod [--check --diff]`."""
    run_playbook(session, playbook="deploy.yml", usage="nox -s deploy -- ENV [ansible args]")


@nox.session(python=PYTHON, default=False)
def verify(session: nox.Session) -> None:
    """Compare an environment's live hosts with the local build, deploying nothing: `-- prod`."""
    run_playbook(session, playbook="verify.yml", usage="nox -s verify -- ENV [ansible args]")


@nox.session(python=PYTHON, default=False)
def deploy_tests(session: nox.Session) -> None:
    """Run only the deploy tests: the real playbooks on SSH + Docker test hosts (after build)."""
    install_dev_tools(session)
    session.run("pytest", "-m", "deploy", "tests/deploy", *session.posargs)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Measure HTTP, build, deploy and operate: reports/bench.*; `-- --quick` ~4 min."""
    if not set(session.posargs) <= {"--quick", "--only", "operate"}:
        session.error("Usage: nox -s bench [-- --quick] [--only operate]")
    install_dev_tools(session)
    session.run("python", "-m", "bench", *session.posargs)


@nox.session(python=PYTHON, default=False)
def drills(session: nox.Session) -> None:
    """Attack the prod stack and test hosts: reports/drills.*; `-- --quick` about 6 min."""
    install_dev_tools(session)
    session.run("python", "-m", "drills", *session.posargs)


# The operating sessions share one virtualenv with the pinned tool chain, installed only
# when the lock changes: `nox -s status` then costs the status itself, not a pip check
# in each of eight session venvs.
OPERATE_VENV = Path(".nox/operate-tools")


def operate_python(session: nox.Session) -> str:
    """The shared operating venv's python, (re)installed from DEV_LOCK when it changed."""
    python = OPERATE_VENV / "bin" / "python"
    stamp = OPERATE_VENV / "dev-lock.sha256"
    wanted = hashlib.sha256(Path(DEV_LOCK).read_bytes()).hexdigest()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        session.run(f"python{PYTHON}", "-m", "venv", "--clear", str(OPERATE_VENV), external=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        session.run(*pip, "--require-hashes", "-r", DEV_LOCK, external=True)
        session.run(*pip, "--no-deps", "--no-build-isolation", "-e", ".", external=True)
        stamp.write_text(wanted)
    return str(python)


def operate(session: nox.Session, verb: str) -> None:
    """`python -m kit.operate VERB` with the posargs; its usage errors name the session."""
    if not session.posargs or session.posargs[0].startswith("-"):
        session.run(operate_python(session), "-m", "kit.operate", verb, "--help", external=True)
        session.error(f"Usage: nox -s {verb} -- ENV ... (see above)")
    session.run(
        operate_python(session), "-m", "kit.operate", verb, *session.posargs, external=True
    )


@nox.session(venv_backend="none", default=False)
def status(session: nox.Session) -> None:
    """Each host's release, health, schema, free space, backup, lock: `-- prod [--json]`."""
    operate(session, "status")


@nox.session(venv_backend="none", default=False)
def logs(session: nox.Session) -> None:
    """All hosts' logs: `-- prod [SERVICE] [--host H] [--since 10m] [--follow] [--grep T]`."""
    operate(session, "logs")


@nox.session(name="exec", venv_backend="none", default=False)
def exec_(session: nox.Session) -> None:
    """A command in a service of one host, exiting with its status: `-- prod --host H app CMD`."""
    operate(session, "exec")


@nox.session(venv_backend="none", default=False)
def shell(session: nox.Session) -> None:
    """The SQLite shell on one host's live database: `-- prod --host H`."""
    operate(session, "shell")


@nox.session(venv_backend="none", default=False)
def audit(session: nox.Session) -> None:
    """The last deploys, rollbacks and restores in each host's audit log: `-- prod [--last N]`."""
    operate(session, "audit")


@nox.session(venv_backend="none", default=False)
def rollback(session: nox.Session) -> None:
    """Every host of an environment back to its previous release: `-- prod [--to IMAGE]`."""
    operate(session, "rollback")


@nox.session(venv_backend="none", default=False)
def backup(session: nox.Session) -> None:
    """An online backup of one host, fetched to build/backups/: `-- prod --host H`."""
    operate(session, "backup")


@nox.session(venv_backend="none", default=False)
def restore(session: nox.Session) -> None:
    """One host's database from a backup on its volume: `-- prod --host H /backups/app-….db`."""
    operate(session, "restore")
