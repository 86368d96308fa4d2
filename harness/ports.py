"""Free TCP ports on 127.0.0.1 for the stacks and servers a run starts."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; another process may still
    take it before the caller binds, which the callers' start-up checks would report)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
