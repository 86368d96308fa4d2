"""`rollback`, `backup` and `restore`: the playbooks, with their arguments checked first."""

from __future__ import annotations

import subprocess

from kit.operate import inventory


def run(book: str, environment: str, extra: dict[str, str], passthrough: list[str]) -> int:
    """ansible-playbook BOOK for ENVIRONMENT from ansible/, as `nox -s deploy` runs it."""
    argv = [inventory.tool("ansible-playbook"), book, "-e", f"env={environment}"]
    for name, value in extra.items():
        argv += ["-e", f"{name}={value}"]
    return subprocess.call([*argv, *passthrough], cwd=inventory.ANSIBLE_DIR)
