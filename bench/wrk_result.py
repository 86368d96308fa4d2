"""What one wrk run measured, read from the BENCH_RESULT line that scenario.lua prints."""

from __future__ import annotations

import json
from dataclasses import dataclass

MARKER = "BENCH_RESULT "


class WrkOutputError(ValueError):
    """wrk's output holds no usable result line."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    # Socket errors (connect, read, write, timeout) plus non-2xx answers other than 412.
    errors: int
    conflicts: int
    # CPU the generator itself used, in % of one core: near 100 x its threads means wrk,
    # not the app, was the limit.
    generator_cpu_pct: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def parse(output: str, *, generator_cpu_pct: float = 0.0) -> WrkResult:
    """The result in wrk's stdout; a missing or malformed line raises WrkOutputError."""
    lines = [line for line in output.splitlines() if line.startswith(MARKER)]
    if len(lines) != 1:
        tail = " | ".join(output.strip().splitlines()[-3:]) or "no output"
        raise WrkOutputError(
            f"expected one {MARKER.strip()} line from wrk, found {len(lines)} ({tail}); "
            "run wrk with -s bench/wrk/scenario.lua"
        )
    try:
        data = json.loads(lines[0][len(MARKER) :])
        socket_errors = sum(
            int(data["errors"][k]) for k in ("connect", "read", "write", "timeout")
        )
        return WrkResult(
            requests=int(data["requests"]),
            seconds=int(data["duration_us"]) / 1e6,
            p50_ms=float(data["p50_ms"]),
            p99_ms=float(data["p99_ms"]),
            max_ms=float(data["max_ms"]),
            errors=socket_errors + int(data["non2xx"]),
            conflicts=int(data["conflicts"]),
            generator_cpu_pct=generator_cpu_pct,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise WrkOutputError(
            f"malformed {MARKER.strip()} line {lines[0][:120]!r}: {error}; "
            "check bench/wrk/scenario.lua's done()"
        ) from None
