"""`exec ENV --host H SERVICE CMD...` and `shell ENV --host H`: a command in one service
of one host, its output passed through and its exit status returned."""

from __future__ import annotations

import subprocess
import sys

from kit.console import KitError
from kit.operate import compose, remote
from kit.operate.inventory import Host

# The live database, where the sqlite service mounts it (compose/compose.yaml).
DATABASE = "/data/app.db"


def run(host: Host, environment: str, service: str, argv: list[str]) -> int:
    """ARGV in SERVICE on HOST, attached to this terminal when there is one."""
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    exec_args = ["exec"] + ([] if tty else ["-T"]) + [service, *argv]
    command = remote.command_line(host, compose.command(host, environment, *exec_args), tty=tty)
    status = subprocess.call(command)
    if status == remote.SSH_FAILED and not host.local:
        raise KitError(
            f"{host.name} unreachable over SSH, or the command exited 255; "
            "check the host with `nox -s status`"
        )
    return status


def shell(host: Host, environment: str) -> int:
    """The SQLite shell on the live database, in the sqlite service."""
    return run(host, environment, "sqlite", ["sqlite3", DATABASE])
