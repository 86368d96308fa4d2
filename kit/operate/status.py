"""`status ENV`: what every host of an environment runs, and whether it is healthy.

One probe per host (kit/operate/host_probe.py, run by the host's python3 over one ssh
connection), all hosts at once. Exits 1 naming each host that is unreachable or has a
service that is not running and healthy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.console import human_bytes
from kit.operate import remote
from kit.operate.inventory import Host

PROBE = Path(__file__).with_name("host_probe.py")
WIDTH = 80
NONE = "—"
# Fields that other parts of the stack report in /readyz, read where they are present, as
# paths into its answer: the proxy's live release slot, and the replica block that the
# app adds when REPLICA_URL is set.
READY_FIELDS = {
    "slot": ("slot",),
    "replica_lag_s": ("replica", "lag_s"),
    "replica_verified": ("replica", "last_verified_at"),
}


@dataclass
class HostStatus:
    host: str
    reachable: bool = True
    release: str = NONE
    image_id: str = NONE
    previous: str = NONE
    since: str = NONE
    services: dict[str, str] = field(default_factory=dict)
    schema: str = NONE
    free_bytes: int | None = None
    last_backup: str = NONE
    lock: str = NONE
    slot: str = NONE
    replica_lag_s: str = NONE
    replica_verified: str = NONE
    problems: list[str] = field(default_factory=list)


def _when(stamp: str) -> str:
    """`2026-12-02T16:10:11.5Z` or `app-20261202T161011Z.db` as `2026-12-02 16:10Z`."""
    if stamp.startswith("app-") and len(stamp) >= 19:
        digits = stamp[4:19]
        return f"{digits[0:4]}-{digits[4:6]}-{digits[6:8]} {digits[9:11]}:{digits[11:13]}Z"
    if len(stamp) >= 16 and stamp[10] == "T":
        return f"{stamp[:10]} {stamp[11:16]}Z"
    return NONE


def _ready_field(body: Any, path: tuple[str, ...]) -> str:
    for key in path:
        if not isinstance(body, dict) or body.get(key) is None:
            return NONE
        body = body[key]
    return str(body)


def judge(host: Host, environment: str, report: dict[str, Any]) -> HostStatus:
    """A host's status from its probe's REPORT, with a problem line for each fault."""
    status = HostStatus(host.name)
    if not report.get("installed"):
        status.problems.append(
            f"{host.name}: no {environment} stack in {host.app_dir} (no .env.{environment}); "
            f"deploy it with `nox -s deploy -- {environment}`"
        )
        return status
    releases = report.get("releases") or {}
    current, previous = releases.get("current") or {}, releases.get("previous") or {}
    status.previous = str(previous.get("image", NONE))
    containers = {item["service"]: item for item in report.get("containers", [])}
    app = containers.get("app", {})
    if app:
        # The image tag's form: the revision cut to seven characters, as git shows it.
        status.release = f"{app['version']}-{app['revision'][:7]}"
        status.image_id = app["image_id"].removeprefix("sha256:")[:12]
        status.since = _when(app["started_at"]) if app["state"] == "running" else NONE
    elif current:
        status.image_id = str(current.get("id", NONE)).removeprefix("sha256:")[:12]
    for service, item in sorted(containers.items()):
        healthy = item["state"] == "running" and item["health"] in ("healthy", "none")
        status.services[service] = item["health"] if item["state"] == "running" else item["state"]
        if not healthy:
            status.problems.append(
                f"{host.name}: service {service} is {status.services[service]}; see "
                f"`nox -s logs -- {environment} {service} --host {host.name}`"
            )
    if not containers:
        status.problems.append(
            f"{host.name}: no service of the stack runs; "
            f"deploy with `nox -s deploy -- {environment}`"
        )
    sqlite = report.get("sqlite") or {}
    status.schema = sqlite.get("schema", NONE)
    status.free_bytes = int(sqlite["free_bytes"]) if "free_bytes" in sqlite else None
    status.last_backup = _when(sqlite.get("last_backup", ""))
    lock = report.get("lock")
    if lock:
        status.lock = f"held by {lock.get('by', 'unknown')} since {_when(lock.get('since', ''))}"
    ready = report.get("ready") or {}
    for name, path in READY_FIELDS.items():
        setattr(status, name, _ready_field(ready.get("body"), path))
    if status.replica_verified != NONE:
        status.replica_verified = _when(status.replica_verified)
    if containers and ready.get("status") != 200:
        reason = ready.get("error") or (ready.get("body") or {}).get("detail") or "no reason"
        status.problems.append(
            f"{host.name}: /readyz answered {ready.get('status') or 'nothing'} ({reason})"
        )
    return status


def probe(host: Host, environment: str) -> HostStatus:
    result = remote.run(
        host,
        f"python3 - {host.app_dir} {environment}",
        stdin=PROBE.read_text(),
    )
    if result.unreachable:
        return HostStatus(
            host.name, reachable=False,
            problems=[f"{host.name} unreachable over SSH: {result.why()}; check that it is up "
                      "and that the inventory's address, port, user and key reach it"],
        )  # fmt: skip
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return HostStatus(
            host.name,
            problems=[f"{host.name}: the status probe failed ({result.why()}); "
                      "the host needs python3, as Ansible does"],
        )  # fmt: skip
    return judge(host, environment, report)


def collect(hosts: list[Host], environment: str) -> list[HostStatus]:
    return remote.each(hosts, lambda host: probe(host, environment))


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def table(statuses: list[HostStatus]) -> str:
    """One row per host and two indented lines under it, each within 80 columns."""
    name_width = max(6, *(len(s.host) + 1 for s in statuses))
    lines = [_fit(f"{'HOST':<{name_width}}{'RELEASE':<22}{'IMAGE':<14}{'UP SINCE':<19}SCHEMA")]
    indent = " " * name_width
    for s in statuses:
        if not s.reachable:
            lines.append(_fit(f"{s.host:<{name_width}}unreachable"))
            continue
        lines.append(
            _fit(f"{s.host:<{name_width}}{s.release:<22}{s.image_id:<14}{s.since:<19}{s.schema}")
        )
        services = ", ".join(f"{name} {state}" for name, state in s.services.items()) or NONE
        free = human_bytes(s.free_bytes) if s.free_bytes is not None else NONE
        lines.append(_fit(f"{indent}services {services}"))
        lines.append(_fit(f"{indent}free {free}; backup {s.last_backup}; previous {s.previous}"))
        lines.append(_fit(f"{indent}lock {s.lock}; slot {s.slot}"))
        lines.append(
            _fit(f"{indent}replica lag {s.replica_lag_s} s; verified {s.replica_verified}")
            if s.replica_lag_s != NONE
            else _fit(f"{indent}replica {NONE}")
        )
    return "\n".join(lines)


def as_json(statuses: list[HostStatus]) -> str:
    return json.dumps([vars(s) for s in statuses], indent=2)
