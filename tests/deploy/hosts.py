"""Test hosts: containers that stand in for servers, each with its own sshd (and, for
the prepared kind, its own Docker engine), reached only through 127.0.0.1 ports.

Host images are built from the local base once and reused across runs: their tag is a
hash of everything that goes into them, so a changed Dockerfile makes a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent / "hosts"
BASE_IMAGE = "localhost/webapp-base:bookworm"
COMPOSE_PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
# The run flags ENVIRONMENT.md found to work without --privileged.
RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]  # fmt: skip


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def _digest(paths: list[Path]) -> str:
    digest = hashlib.sha256(
        docker("image", "inspect", "-f", "{{.Id}}", BASE_IMAGE).stdout.encode()
    )
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def host_image(kind: str) -> str:
    """The tag of the `kind` host image (docker-host or bare-host), built if missing."""
    files = sorted((HERE / kind).iterdir())
    if kind == "docker-host":
        files.append(COMPOSE_PLUGIN)
    tag = f"localhost/webapp-test-{kind}:{_digest(files)}"
    if docker("image", "inspect", tag, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as context:
            for path in files:
                shutil.copy2(path, Path(context) / path.name)
            docker("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, context)
    return tag


@dataclass
class Host:
    name: str
    container: str
    ssh_port: int
    app_port: int | None

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host directly (for setting up and inspecting)."""
        return docker("exec", self.container, "sh", "-c", command, check=check)


def _published(container: str, port: int) -> int:
    output = docker("port", container, f"{port}/tcp").stdout.splitlines()[0]
    return int(output.rsplit(":", 1)[1])


def start(name: str, image: str, public_key: Path, *, systemd: bool) -> Host:
    # The process ID keeps two test runs on one machine from removing each other's hosts.
    container = f"webapp-test-{name}-{os.getpid()}"
    docker("rm", "-f", "-v", container, check=False)
    docker("volume", "rm", f"{container}-docker", check=False)
    ports = ["-p", "127.0.0.1::22"]
    extra = ["--tmpfs", "/run", "--tmpfs", "/run/lock"] if systemd else ["-p", "127.0.0.1::8000"]
    docker(
        "run", "-d", "--name", container, "--hostname", name, *RUN_FLAGS, *ports, *extra,
        "-v", f"{container}-docker:/var/lib/docker",
        "-v", f"{public_key}:/root/.ssh/authorized_keys:ro",
        image,
    )  # fmt: skip
    host = Host(name, container, _published(container, 22), None)
    if not systemd:
        host.app_port = _published(container, 8000)
    wait_for_ssh(host)
    return host


def wait_for_ssh(host: Host, attempts: int = 60) -> None:
    for _ in range(attempts):
        if host.sh("ss -ltn | grep -q ':22 '", check=False).returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"sshd on {host.container} did not listen within {attempts} s")


def stop_all(hosts: list[Host]) -> None:
    for host in hosts:
        docker("rm", "-f", "-v", host.container, check=False)
        docker("volume", "rm", f"{host.container}-docker", check=False)


@dataclass
class Fleet:
    """Started hosts, the SSH key they trust and the inventory that reaches them."""

    key: Path
    prod: list[Host]
    bare: Host | None
    inventory: Path

    def stop(self) -> None:
        stop_all(self.prod + ([self.bare] if self.bare else []))


def start_fleet(workdir: Path, names: list[str], *, bare: str | None = None) -> Fleet:
    """Prepared hosts NAMES (group [prod]) and optionally one bare systemd host ([bare]),
    each listening for SSH, with a fresh key and inventory under WORKDIR. Shared by the
    deploy tests and the bench, so both deploy to hosts made the same way."""
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub")
    public.chmod(0o644)
    started: list[Host] = []
    try:
        docker_image = host_image("docker-host")
        for name in names:
            started.append(start(name, docker_image, public, systemd=False))
        bare_host = None
        if bare is not None:
            bare_host = start(bare, host_image("bare-host"), public, systemd=True)
            started.append(bare_host)
    except BaseException:
        stop_all(started)
        raise
    prod = started[: len(names)]
    path = inventory(workdir / "inventory.ini", key, prod, bare_host, sys.executable)
    return Fleet(key, prod, bare_host, path)


def inventory(path: Path, key: Path, prod: list[Host], bare: Host | None, python: str) -> Path:
    common = (
        f"ansible_host=127.0.0.1 ansible_user=root ansible_ssh_private_key_file={key} "
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' "
        "ansible_python_interpreter=/usr/bin/python3"
    )
    # Inside a test host the app must listen on all its interfaces, or the port
    # published on the real machine's 127.0.0.1 could not reach it.
    overrides = json.dumps({"WEBAPP_BIND_ADDRESS": "0.0.0.0"})
    lines = ["[dev]", f"localhost ansible_connection=local ansible_python_interpreter={python}"]
    lines += ["", "[prod]"]
    lines += [
        f"{h.name} ansible_port={h.ssh_port} {common} webapp_env_overrides='{overrides}'"
        for h in prod
    ]
    if bare is not None:
        lines += ["", "[bare]", f"{bare.name} ansible_port={bare.ssh_port} {common}"]
    path.write_text("\n".join(lines) + "\n")
    return path
