"""The prod secret on a real SSH test host: never printed, never recorded, locked down.

One deploy at `-vvv`, with a distinctive random secret key. Then the secret value (as
is, and base64-encoded the way Ansible moves file contents) is looked for in everything
the deploy prints or leaves: the play's output, the host's audit log, release record,
env files, `docker compose config`, `docker inspect` and the logs of the stack, Ansible's
temporary files on the host and the env file the controller rendered. Only the secret
file may hold it. The env and secret files must be mode 0600, owned as the README says.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path

from drills import host_lab
from drills.outcome import DrillContext, DrillOutcome
from harness.hosts import Host
from harness.lab import Lab
from harness.repo import HOST_APP_DIR as APP_DIR
from harness.repo import HOST_COMPOSE as COMPOSE
from harness.repo import ROOT
from kit import console


@dataclass(frozen=True)
class FileMode:
    """What `stat -c '%u %g %a %n'` says of one file on the host (numeric IDs)."""

    owner: str
    group: str
    mode: str
    path: str


# Documented in the README's deploy section: root-only config (UID 0), and a key that only
# the app's UID 10001 reads (the host has no user of that name, hence numeric IDs).
EXPECTED_MODES = {
    f"{APP_DIR}/.env.prod": ("0", "0", "600"),
    f"{APP_DIR}/secrets/secret_key": ("10001", "10001", "600"),
    f"{APP_DIR}/releases.json": ("0", "0", "600"),
    f"{APP_DIR}/audit.log": ("0", "0", "600"),
}
RELEASE_ENV_MODE = ("0", "0", "600")
# Where Ansible leaves files on a host: module temp dirs and async job results.
ANSIBLE_LEFTOVERS = "/root/.ansible /root/.ansible_async /tmp /var/tmp"


def distinctive_secret() -> str:
    """A valid prod key no other text on a host could contain by chance."""
    return f"drill-secret-{secrets.token_hex(24)}"


def forms(secret: str) -> list[str]:
    """The secret as is and as base64 (with and without the newline the file adds)."""
    encoded = [base64.b64encode(text.encode()).decode() for text in (secret, secret + "\n")]
    return [secret, *encoded]


def leaks_in(text: str, secret: str) -> bool:
    return any(form in text for form in forms(secret))


def parse_modes(stat_output: str) -> list[FileMode]:
    """Parse lines of `stat -c '%u %g %a %n'`."""
    found = []
    for line in stat_output.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4:
            found.append(FileMode(*parts))
    return found


def mode_problems(modes: list[FileMode], expected: dict[str, tuple[str, str, str]]) -> list[str]:
    """One line per file that is missing or not owned and moded as `expected` says."""
    seen = {mode.path: mode for mode in modes}
    problems = []
    for path, (owner, group, bits) in expected.items():
        mode = seen.get(path)
        if mode is None:
            problems.append(f"{path} is missing")
        elif (mode.owner, mode.group, mode.mode) != (owner, group, bits):
            problems.append(
                f"{path} is {mode.owner}:{mode.group} {mode.mode}, expected {owner}:{group} {bits}"
            )
    return problems


def places(lab: Lab, host: Host) -> dict[str, str]:
    """Everything on the host and the controller that must not hold the secret."""
    app_files = f"find {APP_DIR} -path {APP_DIR}/secrets -prune -o -type f -print0"
    return {
        "the host's audit log": lab.sh(host, f"cat {APP_DIR}/audit.log"),
        "the host's release record": lab.sh(host, f"cat {APP_DIR}/releases.json"),
        "the host's app directory (all but secrets/)": lab.sh(
            host, f"{app_files} | xargs -0 cat 2>/dev/null"
        ),
        "`docker compose config` on the host": lab.sh(host, f"{COMPOSE} config"),
        "`docker inspect` of the stack's containers": lab.sh(
            host, f"docker inspect $({COMPOSE} ps --all --quiet)"
        ),
        "the stack's container logs": lab.sh(host, f"{COMPOSE} logs --no-color 2>&1"),
        "Ansible's files left on the host": lab.sh(
            host, f"cat $(find {ANSIBLE_LEFTOVERS} -type f 2>/dev/null) 2>/dev/null"
        ),
        "the env file rendered on the controller": _read(
            ROOT / "build" / "deploy" / "prod" / f"{host.name}.env"
        ),
    }


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""  # not rendered: nothing there to leak


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="host_secrets")
    leaks = failures = 0
    try:
        with host_lab.running(context, "host_secrets", 1) as lab:
            lab.secret = distinctive_secret()
            host = lab.hosts[0]
            with console.step("Deploying with a distinctive secret key at -vvv"):
                play = lab.deploy(lab.releases["v1"], "-vvv", label="deploy-vvv")
            if not outcome.check(
                play.returncode == 0,
                f"the -vvv deploy failed (exit {play.returncode}); see {lab.logs}",
            ):
                return outcome
            # The search must be able to find it: the key the app reads is this one.
            on_host = lab.sh(host, f"cat {APP_DIR}/secrets/secret_key")
            if not outcome.check(
                on_host == lab.secret,
                f"{APP_DIR}/secrets/secret_key on {host.name} does not hold the deployed key; "
                "the leak search would prove nothing",
            ):
                return outcome
            where = {"the deploy's -vvv output": play.output, **places(lab, host)}
            for place, text in where.items():
                if leaks_in(text, lab.secret):
                    leaks += 1
                    outcome.fail(f"the prod secret key appears in {place} on {host.name}")
            outcome.notes.append(
                f"Secret searched (plain and base64) in {len(where)} places, "
                f"{len(play.output)} characters of -vvv output."
            )
            release_envs = lab.sh(host, f"ls {APP_DIR}/releases/").split()
            expected = {
                **EXPECTED_MODES,
                **{f"{APP_DIR}/releases/{name}": RELEASE_ENV_MODE for name in release_envs},
            }
            stat = lab.sh(host, "stat -c '%u %g %a %n' " + " ".join(expected))
            for problem in mode_problems(parse_modes(stat), expected):
                failures += 1
                outcome.fail(f"{host.name}: {problem}")
    finally:
        outcome.figures.update({"secrets.leaks": leaks, "hardening.failures": failures})
    return outcome
