"""SSH + Docker test hosts for the drills that deploy: started, deployed to, always removed.

The hosts are the deploy tests' own (tests/deploy/hosts.py): containers with their own
sshd and Docker engine, reached only through ports on 127.0.0.1. The drills run the real
`ansible-playbook deploy.yml -e env=prod` against them, with build records for images
derived from the current build (a failing migration, a crash at start, a code change).

    with host_lab.running(context, "deploy_faults", count=1) as lab:
        first = lab.deploy(lab.release("v1"))
"""

# Every command here is docker, ssh-keygen or ansible-playbook with arguments the drill
# builds itself.
# ruff: noqa: S603, S607

from __future__ import annotations

import importlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from drills.outcome import DrillContext
from kit import console

# The deploy tests' host helpers. Imported by name because mypy takes tests/deploy/hosts/
# (the host images' directory) for the module; `Host` below states what the drills use.
hosts: Any = importlib.import_module("tests.deploy.hosts")


class Host(Protocol):
    """A test host (tests.deploy.Host): a container with sshd and a Docker engine."""

    name: str
    container: str
    ssh_port: int
    app_port: int | None

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...


ROOT = Path(__file__).resolve().parents[1]
ANSIBLE_DIR = ROOT / "ansible"
BUILD_RECORD = ROOT / "build" / "image.json"
# Bounds: no deploy and no HTTP request may outlast these.
DEPLOY_TIMEOUT_S = 600
HTTP_TIMEOUT_S = 10
# Each play's output, kept after the run (reports/ is git-ignored) for the failures to cite.
LOGS = ROOT / "reports" / "drill-logs"
# The env file and compose project the deploy installs on every host.
APP_DIR = "/opt/webapp"
COMPOSE = f"cd {APP_DIR} && docker compose --env-file .env.prod"


def playbook() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    if not beside.is_file():
        raise RuntimeError(f"{beside} is missing; run the drills with `nox -s drills`")
    return str(beside)


def build_facts(image_env: list[str]) -> dict[str, str]:
    """The build record's version, revision and time, from an image's APP_* variables."""
    values = dict(item.split("=", 1) for item in image_env if "=" in item)
    names = {"version": "APP_VERSION", "revision": "APP_REVISION", "built_at": "APP_BUILT_AT"}
    return {key: values[name] for key, name in names.items() if name in values}


@dataclass
class Play:
    """One ansible-playbook run: its exit status and everything it printed."""

    returncode: int
    output: str

    def flat(self) -> str:
        """The output with its line breaks folded, for matching messages Ansible wraps."""
        return " ".join(self.output.split())


@dataclass
class Release:
    """A build record (the form `nox -s build` writes) for one image the drill deploys."""

    name: str
    image: str
    image_id: str
    path: Path


@dataclass
class HostLab:
    workdir: Path
    inventory: Path
    hosts: list[Host]
    tag: str
    logs: Path
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    releases: dict[str, Release] = field(default_factory=dict)
    plays: int = 0

    def command(self, record: Path, *args: str, book: str = "deploy.yml") -> list[str]:
        return [
            playbook(), "-i", str(self.inventory), book, "-e", "env=prod",
            "-e", f"webapp_build_record={record}",
            # Drill exports stay out of the working tree's ship cache.
            "-e", f"webapp_ship_cache={self.workdir / 'ship'}",
            *args,
        ]  # fmt: skip

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "WEBAPP_SECRET_KEY": self.secret,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_TIMEOUT": "10",
            "PATH": f"{Path(playbook()).parent}:{os.environ['PATH']}",
        }

    def log(self, label: str, output: str) -> Path:
        self.plays += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{self.plays}-{label}.log"
        path.write_text(output)
        return path

    def deploy(self, release: Release, *args: str, label: str = "") -> Play:
        """`deploy.yml -e env=prod` of `release`; its output is kept in the scratch dir."""
        result = subprocess.run(
            self.command(release.path, *args), cwd=ANSIBLE_DIR, env=self.environ(),
            capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S, check=False,
        )  # fmt: skip
        play = Play(result.returncode, result.stdout + result.stderr)
        self.log(label or f"deploy-{release.name}", play.output)
        return play

    def rollback(self, release: Release) -> Play:
        """`rollback.yml -e env=prod` to each host's previous release."""
        result = subprocess.run(
            self.command(release.path, book="rollback.yml"), cwd=ANSIBLE_DIR,
            env=self.environ(), capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_S,
            check=False,
        )  # fmt: skip
        play = Play(result.returncode, result.stdout + result.stderr)
        self.log("rollback", play.output)
        return play

    def derive(self, name: str, dockerfile_tail: str, files: dict[str, str]) -> Release:
        """An image built FROM the current build with `dockerfile_tail`, and its record."""
        tag = f"{self.tag}-{name}"
        with tempfile.TemporaryDirectory() as context:
            Path(context, "Dockerfile").write_text(f"FROM {self.tag}-v1\n{dockerfile_tail}\n")
            for file_name, text in files.items():
                Path(context, file_name).write_text(text)
            hosts.docker("build", "-q", "-t", tag, context)
        return self._record(name, tag)

    def _record(self, name: str, tag: str) -> Release:
        inspected = hosts.docker("image", "inspect", "-f", "{{.Id}} {{json .Config.Env}}", tag)
        image_id, env = inspected.stdout.strip().split(" ", 1)
        path = self.workdir / f"{name}.json"
        base = json.loads(BUILD_RECORD.read_text())
        # The build facts come from the image itself: build/image.json may already describe
        # a newer build made while the drills ran, and the deploy checks /version against them.
        path.write_text(
            json.dumps({**base, **build_facts(json.loads(env)), "image": tag, "id": image_id})
        )
        release = Release(name, tag, image_id, path)
        self.releases[name] = release
        return release

    def sh(self, host: Host, command: str) -> str:
        """A shell command run on the host directly (not through the deploy's SSH)."""
        return host.sh(command, check=False).stdout.strip()

    def service_image(self, host: Host, service: str) -> str:
        container = self.sh(host, f"{COMPOSE} ps --all --quiet {service}")
        if not container:
            return "none"
        return self.sh(host, f"docker inspect --format '{{{{.Image}}}}' {container}") or "none"

    def schema(self, host: Host) -> str:
        """The schema revision in the host's database file, read by the running release."""
        found = self.sh(host, f"{COMPOSE} exec -T sqlite python -m webapp db current")
        return found.splitlines()[-1] if found else "unreadable"

    def http(
        self, host: Host, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """A request to the host's app on 127.0.0.1; (0, None) when nothing answers."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{host.app_port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            # Always http://127.0.0.1:<port>, built above.
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, None
        except OSError:
            return 0, None


@contextmanager
def running(context: DrillContext, name: str, count: int) -> Iterator[HostLab]:
    """`count` docker hosts and a generated inventory and key; everything removed after."""
    workdir = context.scratch / "lab"
    workdir.mkdir()
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    key.with_suffix(".pub").chmod(0o644)
    # Own tags, unique to this run: a rebuild in the working tree cannot move them.
    tag = f"webapp:drills-{name.replace('_', '-')}-{os.getpid()}"
    hosts.docker("tag", context.image, f"{tag}-v1")
    started: list[Host] = []
    lab: HostLab | None = None
    try:
        with console.step(f"Starting {count} SSH + Docker test host(s)"):
            image = hosts.host_image("docker-host")
            for number in range(1, count + 1):
                host_name = f"{name.replace('_', '')}{number}"
                started.append(
                    hosts.start(host_name, image, key.with_suffix(".pub"), systemd=False)
                )
        inventory = hosts.inventory(workdir / "inventory.ini", key, {"prod": started})
        lab = HostLab(workdir, inventory, started, tag, LOGS / name)
        lab._record("v1", f"{tag}-v1")
        yield lab
    finally:
        hosts.stop_all(started)
        derived = [r.image for r in (lab.releases.values() if lab else []) if r.name != "v1"]
        if derived:
            hosts.docker("rmi", *derived, check=False)
        # Only the tag: the real build keeps its own.
        hosts.docker("rmi", f"{tag}-v1", check=False)
