"""Session fixtures for the deploy tests: test hosts, a generated inventory and SSH key,
build records for the releases the tests deploy, and a runner for ansible-playbook.

The hosts live for the whole session and the tests build on each other's state in file
order (deploy, re-run, redeploy, failures), as a real rollout history would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy import hosts

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class Run:
    returncode: int
    output: str

    def changed(self) -> dict[str, int]:
        return {m["host"]: int(m["changed"]) for m in RECAP.finditer(self.output)}

    def shipped(self) -> list[int]:
        return [int(n) for n in re.findall(r"Shipping \S+: (\d+) bytes", self.output)]

    def ran(self, task: str) -> set[str]:
        """Hosts on which the task named `task` ran (any result but skipping)."""
        hosts_seen: set[str] = set()
        for block in self.output.split("\nTASK [")[1:]:
            if not block.startswith(f"webapp : {task}]"):
                continue
            for line in block.splitlines()[1:]:
                found = re.match(r"^(ok|changed|failed|fatal): \[(?P<host>[^\]]+)\]", line)
                if found:
                    hosts_seen.add(found["host"])
        return hosts_seen


@dataclass
class Lab:
    workdir: Path
    inventory: Path
    prod: list[hosts.Host]
    bare: list[hosts.Host]
    secret: str
    key: Path

    def command(self, playbook: str, *args: str, inventory: Path | None = None) -> list[str]:
        # Test exports stay out of the working tree's build/ship cache.
        cache = f"webapp_ship_cache={self.workdir / 'ship'}"
        chosen = str(inventory or self.inventory)
        return [str(PLAYBOOK), "-i", chosen, playbook, "-e", cache, *args]

    def environ(self) -> dict[str, str]:
        return {
            **os.environ,
            "WEBAPP_SECRET_KEY": self.secret,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_TIMEOUT": "10",
            "PATH": f"{PLAYBOOK.parent}:{os.environ['PATH']}",
        }

    def bare_host(self, name: str) -> hosts.Host:
        return next(host for host in self.bare if host.name == name)

    def play(self, playbook: str, *args: str, inventory: Path | None = None) -> Run:
        started = time.monotonic()
        result = subprocess.run(
            self.command(playbook, *args, inventory=inventory),
            cwd=ANSIBLE_DIR,
            env=self.environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        output = result.stdout + result.stderr
        (self.workdir / "last-run.log").write_text(output)
        run = Run(result.returncode, output)
        # For the record of deploy times and bytes shipped; nothing asserts on time.
        with (self.workdir / "timings.txt").open("a") as timings:
            timings.write(
                f"{playbook} {' '.join(args)}: rc={run.returncode} "
                f"{time.monotonic() - started:.1f} s, shipped {run.shipped()} bytes\n"
            )
        return run


@dataclass
class Release:
    """A build record (what `nox -s build` writes) for one image the tests deploy."""

    path: Path
    image: str
    image_id: str


def _record(base: dict, image: str, path: Path) -> Release:
    image_id = hosts.docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip()
    path.write_text(json.dumps({**base, "image": image, "id": image_id}))
    return Release(path, image, image_id)


def _derived(base_image: str, tag: str, dockerfile_tail: str, context_file: str = "") -> str:
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(f"FROM {base_image}\n{dockerfile_tail}\n")
        Path(context, "change.txt").write_text(context_file)
        hosts.docker("build", "-q", "-t", tag, context)
    return tag


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Release]]:
    """v1 is the real build; v2 a code change on top of it; broken fails its healthcheck;
    crashing exits at start."""
    source = ROOT / "build" / "image.json"
    if not source.is_file():
        pytest.fail("build/image.json is missing; run `nox -s build` before the deploy tests")
    base = json.loads(source.read_text())
    directory = tmp_path_factory.mktemp("releases")
    # Own tags, unique to this run: neither a rebuild in the working tree nor another test
    # run on the same engine can move them.
    tag = f"webapp:deploytest-{os.getpid()}"
    hosts.docker("tag", base["id"], f"{tag}-v1")
    v2 = _derived(
        f"{tag}-v1", f"{tag}-v2",
        "COPY change.txt /app/deploy-test-change.txt", "a code change\n",
    )  # fmt: skip
    # The app listens on another port than the one its healthcheck probes.
    broken = _derived(f"{tag}-v1", f"{tag}-broken", "ENV GUNICORN_BIND=0.0.0.0:8001")
    # The app exits at once, every time: its restart policy makes it a crash loop.
    crashing = _derived(
        f"{tag}-v1", f"{tag}-crashing", 'CMD ["python", "-c", "raise SystemExit(3)"]'
    )
    yield {
        "v1": _record(base, f"{tag}-v1", directory / "v1.json"),
        "v2": _record(base, v2, directory / "v2.json"),
        "broken": _record(base, broken, directory / "broken.json"),
        "crashing": _record(base, crashing, directory / "crashing.json"),
    }
    # Untags v1 (the real build keeps its own tags) and removes the derived images.
    hosts.docker("rmi", f"{tag}-v2", f"{tag}-broken", f"{tag}-crashing", check=False)
    hosts.docker("rmi", f"{tag}-v1", check=False)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    # The prod hosts are Debian 13 with Debian's Compose; the bare ones are fresh Debian 13
    # and Debian 12 servers for provision.yml.
    fleet = hosts.start_fleet(
        workdir, ["web1", "web2"], bare={"bare1": hosts.DEBIAN_13, "bare12": hosts.DEBIAN_12}
    )
    try:
        yield Lab(
            workdir,
            fleet.inventory,
            fleet.prod,
            fleet.bare,
            secrets.token_urlsafe(36),
            fleet.key,
        )
    finally:
        fleet.stop()


def http(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # only 127.0.0.1
        return response.status, json.loads(response.read() or b"{}")


def running_image(host: hosts.Host) -> str:
    container = host.sh(
        "cd /opt/webapp && docker compose --env-file .env.prod ps --quiet app"
    ).stdout.strip()
    return host.sh(f"docker inspect --format '{{{{.Image}}}}' {container}").stdout.strip()
