"""The hosts of one environment, read from the inventory exactly as Ansible reads it.

`ansible-inventory --list` runs from ansible/, so ansible.cfg's inventory applies, and
`ANSIBLE_INVENTORY` or `-i` override it as they do for the playbooks. Each host keeps
the connection variables the playbooks would use, and the app directory the role puts
the stack in (`webapp_app_dir`: the host's own value, else group_vars).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.console import KitError

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
# `ansible-inventory` costs a second or more (several on a busy machine), most of a
# status: its listing is kept here and reused while every file it read is unchanged.
CACHE_DIR = ANSIBLE_DIR.parent / "build" / "inventory-cache"
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


def _sources(source: str | None) -> list[str]:
    """The inventory sources Ansible will read: -i, else ANSIBLE_INVENTORY, else ansible.cfg."""
    if source is not None:
        return [source]
    if os.environ.get("ANSIBLE_INVENTORY"):
        return os.environ["ANSIBLE_INVENTORY"].split(",")
    config = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    config.read(ANSIBLE_DIR / "ansible.cfg")
    return [config.get("defaults", "inventory", fallback="/etc/ansible/hosts")]


def _cache_key(source: str | None) -> str | None:
    """A digest of every file the inventory reads, or None when one is a program (a dynamic
    inventory answers differently each time) or unreadable."""
    digest = hashlib.sha256((ANSIBLE_DIR / "ansible.cfg").read_bytes())
    for name in _sources(source):
        path = (ANSIBLE_DIR / name).resolve()
        digest.update(str(path).encode())
        if not path.exists():
            continue  # a literal host list ("web1,web2"), named by the string alone
        roots = (
            [path]
            if path.is_dir()
            else [path, path.parent / "group_vars", path.parent / "host_vars"]
        )
        files = sorted(
            f
            for root in roots
            if root.exists()
            for f in ([root] if root.is_file() else root.rglob("*"))
            if f.is_file()
        )
        for file in files:
            if os.access(file, os.X_OK):
                return None
            digest.update(str(file).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def read(source: str | None = None) -> dict[str, Any]:
    """`ansible-inventory --list` of SOURCE (as `-i`), else ANSIBLE_INVENTORY or ansible.cfg's."""
    if source is not None and Path(source).exists():
        source = str(Path(source).resolve())
    elif source is not None and "," not in source:
        # Ansible would only warn and list no host at all ("host1,host2" is a host list).
        raise KitError(
            f"inventory {source} does not exist; give -i an inventory file or directory, "
            "or a comma-separated host list"
        )
    key = _cache_key(source)
    cached = CACHE_DIR / f"{key}.json"
    if key is not None and cached.is_file():
        return dict(json.loads(cached.read_text()))
    argv = [tool("ansible-inventory"), "--list"]
    if source is not None:
        argv += ["-i", source]
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
    if key is not None:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}")
        partial.write_text(done.stdout)
        partial.replace(cached)
    return dict(json.loads(done.stdout))


def _group_members(listing: dict[str, Any], group: str) -> list[str]:
    entry = listing.get(group, {})
    names = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        names += [name for name in _group_members(listing, child) if name not in names]
    return names


def _group_app_dir(environment: str) -> str:
    # Imported here: only a host without its own value needs it, and it costs 0.1-0.2 s.
    import yaml

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
                app_dir=str(values.get("webapp_app_dir") or _group_app_dir(environment)),
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
