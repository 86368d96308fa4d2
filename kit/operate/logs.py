"""`logs ENV [SERVICE]`: the services' log lines from every host, each line prefixed with
its host, streamed as they come (`--follow` keeps them coming)."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass

from kit.console import KitError
from kit.operate import compose, remote
from kit.operate.inventory import Host


@dataclass
class Options:
    environment: str
    services: list[str]
    since: str | None
    follow: bool
    grep: str | None


def compose_args(options: Options) -> list[str]:
    args = ["logs", "--no-color"]
    if options.since:
        args += ["--since", options.since]
    if options.follow:
        args.append("--follow")
    return [*args, *options.services]


def stream(hosts: list[Host], options: Options) -> int:
    """Print every host's lines as they arrive; 1 when a host could not be read."""
    width = max(len(host.name) for host in hosts)
    printing = threading.Lock()
    failures: list[str] = []

    def read(host: Host) -> None:
        argv = remote.command_line(
            host, compose.command(host, options.environment, *compose_args(options))
        )
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            for line in process.stdout:
                if options.grep is None or options.grep in line:
                    with printing:
                        sys.stdout.write(f"{host.name:<{width}} {line}")
                        sys.stdout.flush()
            error = process.stderr.read()
        if process.returncode != 0:
            result = remote.Result(host, process.returncode, "", error)
            what = "unreachable over SSH" if result.unreachable else "cannot show its logs"
            failures.append(f"{host.name} {what}: {result.why()}")

    remote.each(hosts, read)
    if failures:
        raise KitError("; ".join(failures))
    return 0
