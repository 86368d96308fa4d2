"""`audit ENV`: the last deploys, rollbacks and restores from each host's audit log."""

from __future__ import annotations

import json
import shlex
from typing import Any

from kit.console import KitError
from kit.operate import remote
from kit.operate.inventory import Host

WIDTH = 80


def entries(hosts: list[Host], last: int) -> list[dict[str, Any]]:
    """The LAST lines of every host's audit.log, oldest first, each with its host."""

    def read(host: Host) -> remote.Result:
        path = shlex.quote(f"{host.app_dir}/audit.log")
        return remote.run(host, f"if [ -f {path} ]; then tail -n {last} {path}; fi")

    found: list[dict[str, Any]] = []
    failures = []
    for result in remote.each(hosts, read):
        if result.returncode != 0:
            what = "unreachable over SSH" if result.unreachable else "cannot read its audit log"
            failures.append(f"{result.host.name} {what}: {result.why()}")
            continue
        for line in result.stdout.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"result": "unreadable line", "line": line}
            found.append({"host": result.host.name, **entry})
    if failures:
        raise KitError("; ".join(failures))
    return sorted(found, key=lambda entry: str(entry.get("time", "")))


def table(found: list[dict[str, Any]]) -> str:
    lines = [f"{'TIME':<21}{'HOST':<10}{'RESULT':<12}{'BY':<16}IMAGE"]
    for entry in found:
        line = (
            f"{entry.get('time', '?')!s:<21}{entry['host'][:9]:<10}"
            f"{str(entry.get('result', '?'))[:11]:<12}{str(entry.get('user', '?'))[:15]:<16}"
            f"{entry.get('image', '?')}"
        )
        lines.append(line if len(line) <= WIDTH else line[: WIDTH - 1] + "…")
    return "\n".join(lines) if found else "no deploys recorded"
