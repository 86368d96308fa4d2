"""An SFTP server for off-host replicas: one container on a Docker network its caller
made, with the account `replica` (SFTP only, key only, no shell) and only an ed25519
host key, as Litestream needs (harness/host_images/sftp-target).

    target = sftp_target.start(network, "replica2-sftp", workdir)
    stack variables: REPLICA_URL=target.url("app"), WEBAPP_REPLICA_HOST_KEY=target.host_key,
                     WEBAPP_REPLICA_KEY_FILE=str(target.key_file)

The client key is made fresh, owned by the app's UID with mode 0600, as the README asks
of the key file an operator gives the stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness import hosts, secret_files
from harness.commands import docker
from harness.stack import wait_for

USER = "replica"
HOME = "/srv/replica"


@dataclass
class SftpTarget:
    container: str
    # The container's name is its address on the network.
    hostname: str
    host_key: str
    key_file: Path

    def url(self, directory: str) -> str:
        return f"sftp://{USER}@{self.hostname}{HOME}/{directory}"

    def files(self, directory: str) -> list[str]:
        """The replica's files under DIRECTORY, as the server holds them."""
        found = docker(
            "exec", self.container, "find", f"{HOME}/{directory}", "-type", "f", check=False
        )
        return sorted(found.stdout.split())

    def sh(self, command: str) -> str:
        """COMMAND run on the server itself (its own loopback), stdout and stderr."""
        done = docker("exec", self.container, "sh", "-c", f"{command} 2>&1", check=False)
        return done.stdout

    def stop(self) -> None:
        docker("rm", "-f", "-v", self.container, check=False)


def start(network: str, name: str, workdir: Path) -> SftpTarget:
    """The SFTP server NAME on NETWORK, trusting a new key kept under WORKDIR."""
    workdir.mkdir(parents=True, exist_ok=True)
    generated = workdir / "generated_id_ed25519"
    public = hosts.ssh_key(generated)
    key_file = secret_files.store(workdir / "replica_key", generated.read_bytes())
    generated.unlink()
    container = f"{name}-{os.getpid()}"
    docker("rm", "-f", "-v", container, check=False)
    docker(
        "run", "-d", "--name", container, "--network", network,
        "-v", f"{public}:/etc/ssh/authorized_keys/{USER}:ro",
        hosts.host_image("sftp-target"),
    )  # fmt: skip
    target = SftpTarget(container, container, "", key_file)
    try:
        wait_for(
            lambda: docker("exec", container, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22",
                           check=False).returncode == 0,
            attempts=30, pause=1, what=f"sshd listening in {container}",
        )  # fmt: skip
        line = docker("exec", container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout
    except BaseException:
        target.stop()
        raise
    target.host_key = " ".join(line.split()[:2])
    return target
