"""The deployed stack's compose command on a host, as an operator types it there."""

from __future__ import annotations

import shlex

from kit.operate.inventory import Host


def command(host: Host, environment: str, *args: str) -> str:
    """`docker compose ARGS` in HOST's app directory with ENVIRONMENT's env file."""
    return (
        f"cd {shlex.quote(host.app_dir)} && docker compose --env-file "
        f"{shlex.quote('.env.' + environment)} {shlex.join(args)}"
    )
