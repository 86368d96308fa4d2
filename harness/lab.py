"""A lab of SSH + Docker test hosts: the hosts, their inventory and key, the prod secret,
the releases to deploy, and the plays run against them.

The deploy tests, the drills that deploy and the deploy bench all use this one:

    with lab.running(workdir, "faults", base_image=record["image"], prod=["faults1"]) as lab:
        play = lab.deploy(lab.releases["v1"])
        assert play.returncode == 0 and play.changed()["faults1"] > 0

Each play's output is kept in `logs` (numbered, in order) for a failure to cite.
Release images are tagged `webapp:lab-<name>-<pid>-<release>`: a rebuild in the working
tree or another run on the same engine cannot move them, and they are removed at the end
(the build's own tags stay).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import hosts, http, playbook, secret_files
from harness.commands import docker, run
from harness.hosts import Host
from harness.playbook import Play, Running
from harness.repo import BUILD_RECORD, HOST_COMPOSE

# Bounds: no play may outlast this.
PLAY_TIMEOUT_S = 900


def build_facts(image_env: list[str]) -> dict[str, str]:
    """The build record's version, revision and time, from an image's APP_* variables."""
    values = dict(item.split("=", 1) for item in image_env if "=" in item)
    names = {"version": "APP_VERSION", "revision": "APP_REVISION", "built_at": "APP_BUILT_AT"}
    return {key: values[name] for key, name in names.items() if name in values}


@dataclass
class Release:
    """A build record (the form `nox -s build` writes) for one image the lab deploys."""

    name: str
    image: str
    image_id: str
    path: Path


@dataclass
class Lab:
    workdir: Path
    inventory: Path
    key: Path
    prod: list[Host]
    bare: list[Host]
    tag: str
    logs: Path
    secret: str = field(default_factory=secret_files.new_key)
    releases: dict[str, Release] = field(default_factory=dict)
    plays: int = 0
    # Extra variables for every play (the bench asks Ansible for per-task times).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def hosts(self) -> list[Host]:
        """The prepared Docker hosts, group [prod]."""
        return self.prod

    def bare_host(self, name: str) -> Host:
        return next(host for host in self.bare if host.name == name)

    # Plays

    def arguments(self, *args: str) -> list[str]:
        # Lab exports stay out of the working tree's ship cache.
        return ["-e", f"webapp_ship_cache={self.workdir / 'ship'}", *args]

    def environ(self) -> dict[str, str]:
        return {**playbook.base_env(self.secret), **self.env}

    def _log(self, label: str) -> Path:
        self.plays += 1
        return self.logs / f"{self.plays}-{label}.log"

    def start(
        self,
        book: str,
        *args: str,
        label: str = "",
        inventory: Path | None = None,
        on_event: Any = None,
    ) -> Running:
        """Start `book` in the background (see harness.playbook.start)."""
        return playbook.start(
            book, *self.arguments(*args), inventory=inventory or self.inventory,
            env=self.environ(), timeout=PLAY_TIMEOUT_S,
            log=self._log(label or Path(book).stem), on_event=on_event,
        )  # fmt: skip

    def play(self, book: str, *args: str, label: str = "", inventory: Path | None = None) -> Play:
        """Run `book` (from ansible/) against the lab's inventory, to its end."""
        return self.start(book, *args, label=label, inventory=inventory).wait()

    def deploy_args(self, release: Release | Path, *args: str) -> list[str]:
        record = release.path if isinstance(release, Release) else release
        return ["-e", "env=prod", "-e", f"webapp_build_record={record}", *args]

    def deploy(
        self, release: Release | Path, *args: str, label: str = "", inventory: Path | None = None
    ) -> Play:
        """`deploy.yml -e env=prod` of `release` (a Release or a build record's path), to
        INVENTORY's hosts (else all the lab's)."""
        name = release.name if isinstance(release, Release) else release.stem
        return self.play(
            "deploy.yml",
            *self.deploy_args(release, *args),
            label=label or f"deploy-{name}",
            inventory=inventory,
        )

    def rollback(self, release: Release | Path, inventory: Path | None = None) -> Play:
        """`rollback.yml -e env=prod` to each host's previous release (`release` is the
        build record the play's controller-side checks read)."""
        return self.play(
            "rollback.yml", *self.deploy_args(release), label="rollback", inventory=inventory
        )

    # Releases

    def record(self, name: str, tag: str) -> Release:
        """A build record for image `tag`, its build facts read from the image itself.

        build/image.json may already describe a newer build made while the lab ran, and
        the deploy checks /version against the record.
        """
        inspected = docker("image", "inspect", "-f", "{{.Id}} {{json .Config.Env}}", tag)
        image_id, env = inspected.stdout.strip().split(" ", 1)
        base = json.loads(BUILD_RECORD.read_text())
        path = self.workdir / f"{name}.json"
        path.write_text(
            json.dumps({**base, **build_facts(json.loads(env)), "image": tag, "id": image_id})
        )
        release = Release(name, tag, image_id, path)
        self.releases[name] = release
        return release

    def derive(
        self, name: str, dockerfile_tail: str, files: dict[str, str] | None = None
    ) -> Release:
        """An image built FROM release v1 with `dockerfile_tail`, and its record."""
        tag = f"{self.tag}-{name}"
        with tempfile.TemporaryDirectory() as context:
            Path(context, "Dockerfile").write_text(f"FROM {self.tag}-v1\n{dockerfile_tail}\n")
            for file_name, text in (files or {}).items():
                Path(context, file_name).write_text(text)
            docker("build", "-q", "-t", tag, context)
        return self.record(name, tag)

    # Looking at a host, not through the deploy's SSH

    def sh(self, host: Host, command: str) -> str:
        """A shell command run on the host directly; its output, stripped ("" on failure)."""
        return host.sh(command, check=False).stdout.strip()

    def service_image(self, host: Host, service: str = "app") -> str:
        """The image ID the deployed stack's `service` container runs, or "none"."""
        container = self.sh(host, f"{HOST_COMPOSE} ps --all --quiet {service}")
        if not container:
            return "none"
        return self.sh(host, f"docker inspect --format '{{{{.Image}}}}' {container}") or "none"

    def schema(self, host: Host) -> str:
        """The schema revision in the host's database file, read by the running release."""
        found = self.sh(host, f"{HOST_COMPOSE} exec -T sqlite python -m webapp db current")
        return found.splitlines()[-1] if found else "unreadable"

    def http(
        self, host: Host, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """A JSON request to the host's app on 127.0.0.1; (0, None) when nothing answers."""
        assert host.app_port is not None, f"{host.name} publishes no app port"
        return http.json_request(host.app_port, method, path, body)

    def ssh(self, host: Host, command: str, stdin: Path | None = None) -> Any:
        """`command` over real SSH as root, with the lab's key; the finished process."""
        argv = [
            "ssh", "-i", str(self.key), "-p", str(host.ssh_port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "root@127.0.0.1", command,
        ]  # fmt: skip
        return run(argv, check=False, timeout=PLAY_TIMEOUT_S, stdin=stdin)


@contextmanager
def running(
    workdir: Path,
    name: str,
    *,
    base_image: str | None = None,
    prod: list[str],
    bare: dict[str, str] | None = None,
    logs: Path | None = None,
) -> Iterator[Lab]:
    """Hosts `prod` (Debian 13 with Docker, group [prod]) and `bare` ({name: Debian suite},
    group [bare]), a key, an inventory, and release v1 (`base_image`, if given); all removed
    after."""
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"webapp:lab-{name.replace('_', '-')}-{os.getpid()}"
    fleet = hosts.start_fleet(workdir, prod, bare=bare)
    lab: Lab | None = None
    try:
        lab = Lab(
            workdir, fleet.inventory, fleet.key, fleet.prod, fleet.bare, tag,
            logs or workdir / "logs",
        )  # fmt: skip
        if base_image is not None:
            docker("tag", base_image, f"{tag}-v1")
            lab.record("v1", f"{tag}-v1")
        yield lab
    finally:
        fleet.stop()
        derived = [r.image for r in (lab.releases.values() if lab else []) if r.name != "v1"]
        if derived:
            docker("rmi", *derived, check=False)
        if base_image is not None:
            docker("rmi", f"{tag}-v1", check=False)
