"""Commands on the servers over plain ssh, in parallel, one multiplexed connection each.

Ansible starts a Python on the server for every task, which puts a one-host status at
several seconds. Here each host gets one ssh connection that later commands reuse
(ControlMaster, kept 60 s), built from the inventory's own connection variables, and all
hosts are asked at once. A host of `ansible_connection=local` runs the command here.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kit.operate.inventory import Host

# Bounds: a connection is refused or made within this; a probe command is short.
CONNECT_TIMEOUT_S = 5
COMMAND_TIMEOUT_S = 30
# ssh's own status for a connection that failed (a command never returns it).
SSH_FAILED = 255
T = TypeVar("T")


@dataclass
class Result:
    host: Host
    returncode: int
    stdout: str
    stderr: str

    @property
    def unreachable(self) -> bool:
        return not self.host.local and self.returncode == SSH_FAILED

    def why(self) -> str:
        return (self.stderr.strip().splitlines() or [f"exit status {self.returncode}"])[-1]


def control_dir() -> Path:
    # Short and private: a control socket's path must stay under about 100 bytes.
    path = Path(tempfile.gettempdir()) / f"webapp-ssh-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def command_line(host: Host, command: str, *, tty: bool = False) -> list[str]:
    """The argv that runs shell COMMAND on HOST as root (sudo -n for another user)."""
    if not host.privileged:
        command = f"sudo -n sh -c {shlex.quote(command)}"
    if host.local:
        return ["sh", "-c", command]
    argv = [
        "ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
        "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir()}/%C",
        "-o", "ControlPersist=60s", "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    argv += ["-t"] if tty else ["-T"]
    if host.port is not None:
        argv += ["-p", str(host.port)]
    if host.user:
        argv += ["-l", host.user]
    if host.key_file:
        argv += ["-i", host.key_file]
    argv += shlex.split(host.ssh_args)
    return [*argv, host.address, command]


def run(
    host: Host, command: str, *, stdin: str = "", timeout: float = COMMAND_TIMEOUT_S
) -> Result:
    try:
        done = subprocess.run(
            command_line(host, command), input=stdin, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return Result(host, SSH_FAILED, "", f"no answer within {timeout:.0f} s")
    return Result(host, done.returncode, done.stdout, done.stderr)


def each(hosts: Sequence[Host], job: Callable[[Host], T]) -> list[T]:
    """JOB on every host at once; the answers in the hosts' order."""
    with ThreadPoolExecutor(max_workers=max(1, min(len(hosts), 32))) as pool:
        return list(pool.map(job, hosts))
