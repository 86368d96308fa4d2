"""Test hosts: containers that stand in for servers, each with its own sshd (and, for
the prepared kind, its own Docker engine), reached only through 127.0.0.1 ports.

They are Debian 13 servers, as a user provisions today, with Debian's own docker.io,
docker-cli and docker-compose; nothing is copied from the controller. A Debian 12 kind of
the bare host proves that provision and deploy still work on the previous release.

Host images are built from the local Debian bases once and reused across runs: their tag
is a hash of everything that goes into them, so a changed Dockerfile makes a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.commands import docker, run
from kit import base_image

IMAGES = Path(__file__).parent / "host_images"
# Bounds: a host image installs Debian's Docker packages; a command on a host is short.
HOST_BUILD_TIMEOUT_S = 1800
SH_TIMEOUT_S = 600
DEBIAN_13 = base_image.SUITE
DEBIAN_12 = "bookworm"
# The run flags that work here without --privileged. Nested containers on a bridge need
# the IPv6 variable on Debian 13's engine (it fails to disable IPv6 on their interface
# otherwise); the host images set it for dockerd themselves.
RUN_FLAGS = [
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
]  # fmt: skip


def debian_base(suite: str) -> str:
    """The local Debian base of `suite`, bootstrapped once if the engine lacks it."""
    reference = f"localhost/webapp-base:{suite}"
    if docker("image", "inspect", reference, check=False).returncode != 0:
        base_image.build_local_base(reference, suite=suite)
    return reference


def _digest(base: str, paths: list[Path]) -> str:
    digest = hashlib.sha256(docker("image", "inspect", "-f", "{{.Id}}", base).stdout.encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def host_image(kind: str, suite: str = DEBIAN_13) -> str:
    """The tag of the `kind` host image (docker-host or bare-host) on Debian `suite`,
    built if missing."""
    base = debian_base(suite)
    files = sorted((IMAGES / kind).iterdir())
    tag = f"localhost/webapp-test-{kind}:{suite}-{_digest(base, files)}"
    if docker("image", "inspect", tag, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as context:
            for path in files:
                shutil.copy2(path, Path(context) / path.name)
            docker(
                "build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, context,
                timeout=HOST_BUILD_TIMEOUT_S,
            )  # fmt: skip
    return tag


@dataclass
class Host:
    name: str
    container: str
    ssh_port: int
    app_port: int | None
    # The server's port 80 (the proxy's), published on the real machine's 127.0.0.1: a
    # request there arrives at the server from outside, as a client's would.
    public_port: int | None = None

    def sh(
        self, command: str, check: bool = True, timeout: float = SH_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host directly (for setting up and inspecting)."""
        return docker("exec", self.container, "sh", "-c", command, check=check, timeout=timeout)


def _published(container: str, port: int) -> int:
    output = docker("port", container, f"{port}/tcp").stdout.splitlines()[0]
    return int(output.rsplit(":", 1)[1])


def start(name: str, image: str, public_key: Path, *, systemd: bool) -> Host:
    # The process ID keeps two test runs on one machine from removing each other's hosts.
    container = f"webapp-test-{name}-{os.getpid()}"
    docker("rm", "-f", "-v", container, check=False)
    docker("volume", "rm", f"{container}-docker", check=False)
    ports = ["-p", "127.0.0.1::22", "-p", "127.0.0.1::8000", "-p", "127.0.0.1::80"]
    extra = ["--tmpfs", "/run", "--tmpfs", "/run/lock"] if systemd else []
    docker(
        "run", "-d", "--name", container, "--hostname", name, *RUN_FLAGS, *ports, *extra,
        "-v", f"{container}-docker:/var/lib/docker",
        "-v", f"{public_key}:/root/.ssh/authorized_keys:ro",
        image,
    )  # fmt: skip
    host = Host(
        name,
        container,
        _published(container, 22),
        _published(container, 8000),
        _published(container, 80),
    )
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
    bare: list[Host]
    inventory: Path

    def stop(self) -> None:
        stop_all(self.prod + self.bare)


def start_fleet(workdir: Path, names: list[str], *, bare: dict[str, str] | None = None) -> Fleet:
    """Prepared Debian 13 hosts NAMES (group [prod]) and bare systemd hosts ([bare]), given
    as {name: Debian suite}, each listening for SSH, with a fresh key and inventory under
    WORKDIR. Shared by the deploy tests and the bench, so both deploy to hosts made the
    same way."""
    key = workdir / "id_ed25519"
    public = ssh_key(key)
    started: list[Host] = []
    try:
        docker_image = host_image("docker-host")
        for name in names:
            started.append(start(name, docker_image, public, systemd=False))
        for name, suite in (bare or {}).items():
            started.append(start(name, host_image("bare-host", suite), public, systemd=True))
    except BaseException:
        stop_all(started)
        raise
    prod, bare_hosts = started[: len(names)], started[len(names) :]
    path = inventory(workdir / "inventory.ini", key, {"prod": prod, "bare": bare_hosts})
    return Fleet(key, prod, bare_hosts, path)


def ssh_key(key: Path) -> Path:
    """A fresh passphrase-less key pair at KEY; returns the public half, readable by all
    (the hosts mount it as root's authorized_keys)."""
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    public = key.with_suffix(".pub")
    public.chmod(0o644)
    return public


def inventory(
    path: Path,
    key: Path,
    groups: dict[str, list[Host]],
    env_overrides: dict[str, str] | None = None,
) -> Path:
    """An inventory of GROUPS (name: hosts) beside the controller's own [dev] group.
    Hosts of [prod] get the env override a test host needs, and ENV_OVERRIDES."""
    common = (
        f"ansible_host=127.0.0.1 ansible_user=root ansible_ssh_private_key_file={key} "
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null' "
        "ansible_python_interpreter=/usr/bin/python3"
    )
    # Inside a test host the app must listen on all its interfaces, or the port
    # published on the real machine's 127.0.0.1 could not reach it.
    overrides = json.dumps({"WEBAPP_BIND_ADDRESS": "0.0.0.0", **(env_overrides or {})})  # noqa: S104
    lines = [
        "[dev]",
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
    ]
    for group, members in groups.items():
        extra = f" webapp_env_overrides='{overrides}'" if group == "prod" else ""
        lines += ["", f"[{group}]"]
        lines += [f"{h.name} ansible_port={h.ssh_port} {common}{extra}" for h in members]
    path.write_text("\n".join(lines) + "\n")
    return path


# Tries at a free subnet for a network test hosts join (another run may hold one).
NETWORK_ATTEMPTS = 5


def create_network(name: str) -> None:
    """A network test hosts can join: its subnet is one no test host's own engine uses.
    Docker's default pool hands out 172.18.0.0/16 and up, which the stacks inside the hosts
    take too, and a host then cannot join (its routes conflict)."""
    for _ in range(NETWORK_ATTEMPTS):
        subnet = f"10.{200 + secrets.randbelow(51)}.{secrets.randbelow(256)}.0/24"
        if docker("network", "create", "--subnet", subnet, name, check=False).returncode == 0:
            return
    raise RuntimeError(f"no free subnet for network {name} in {NETWORK_ATTEMPTS} tries")
