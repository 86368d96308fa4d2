"""The machine a measurement ran on, in one line for the reports."""

from __future__ import annotations

import os
from pathlib import Path


def describe() -> str:
    """Cores, memory and the load average right now, e.g. "2 cores, 24.7 GB RAM, load 0.7"."""
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores, {memory_kb / 1e6:.1f} GB RAM, load {load:.1f} at start"
