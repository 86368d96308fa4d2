"""The hosts of one environment, read from the inventory exactly as Ansible reads it.

`ansible-inventory --list` runs from ansible/, so ansible.cfg's inventory applies, and
`ANSIBLE_INVENTORY` or `-i` override it as they do for the playbooks. Each host keeps
the connection variables the playbooks would use, and the app directory the role puts
the stack in (`webapp_app_dir`: the host's own value, else group_vars).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kit.console import KitError

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
# Bounds: reading a static inventory takes about a second.
INVENTORY_TIMEOUT_S = 60


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: int | None
    user: str | None
    key_file: str | None
    ssh_args: str
    local: bool
    app_dir: str

    @property
    def privileged(self) -> bool:
        """Whether commands run as root already (root, or the controller's own user)."""
        return self.local or self.user in (None, "root")


def tool(name: str) -> str:
    # The venv that runs this module holds Ansible, whether or not it is on PATH.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise KitError(
            f"{name} not found; run through nox (`nox -s status -- ENV`) or install ansible"
        )
    return found


def read(source: str | None = None) -> dict[str, Any]:
    """`ansible-inventory --list` of SOURCE (as `-i`), else ANSIBLE_INVENTORY or ansible.cfg's."""
    argv = [tool("ansible-inventory"), "--list"]
    if source is not None:
        argv += ["-i", str(Path(source).resolve()) if Path(source).exists() else source]
    try:
        done = subprocess.run(
            argv, cwd=ANSIBLE_DIR, capture_output=True, text=True,
            timeout=INVENTORY_TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise KitError(f"ansible-inventory gave no answer in {INVENTORY_TIMEOUT_S} s") from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"ansible-inventory failed: {last}; check -i or ANSIBLE_INVENTORY")
    return dict(json.loads(done.stdout))


def _group_members(listing: dict[str, Any], group: str) -> list[str]:
    entry = listing.get(group, {})
    names = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        names += [name for name in _group_members(listing, child) if name not in names]
    return names


def _group_app_dir(environment: str) -> str:
    for scope in (environment, "all"):
        path = ANSIBLE_DIR / "group_vars" / scope / "main.yml"
        if path.is_file():
            values = yaml.safe_load(path.read_text()) or {}
            if "webapp_app_dir" in values:
                return str(values["webapp_app_dir"])
    raise KitError("webapp_app_dir is set nowhere; set it in ansible/group_vars/all/main.yml")


def groups(listing: dict[str, Any]) -> list[str]:
    return sorted(name for name in listing if name not in ("_meta", "all", "ungrouped"))


def hosts(environment: str, listing: dict[str, Any]) -> list[Host]:
    """The hosts of group ENVIRONMENT; an unknown or empty group is refused, naming the
    groups there are."""
    names = _group_members(listing, environment)
    if not names:
        raise KitError(
            f"no hosts in environment {environment!r}; the inventory's groups are: "
            f"{', '.join(groups(listing)) or 'none'}"
        )
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    default_dir = _group_app_dir(environment)
    found = []
    for name in names:
        values = hostvars.get(name, {})
        port = values.get("ansible_port")
        found.append(
            Host(
                name=name,
                address=str(values.get("ansible_host", name)),
                port=int(port) if port is not None else None,
                user=values.get("ansible_user"),
                key_file=values.get("ansible_ssh_private_key_file"),
                ssh_args=str(values.get("ansible_ssh_common_args", "")),
                local=values.get("ansible_connection") == "local",
                app_dir=str(values.get("webapp_app_dir", default_dir)),
            )
        )
    return found


def select(found: list[Host], name: str | None) -> list[Host]:
    """All of FOUND, or the one named; a name that is not there is refused, listing them."""
    if name is None:
        return found
    chosen = [host for host in found if host.name == name]
    if not chosen:
        raise KitError(f"no host {name!r} here; choose from {', '.join(h.name for h in found)}")
    return chosen


def environment_hosts(environment: str, source: str | None = None) -> list[Host]:
    return hosts(environment, read(source))
