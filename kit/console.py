"""Progress output for the long-running kit commands: one line per step, timed.

Every step prints what it is about to do, then how it ended and how long it took, so a
build or a stack start that stalls shows where. Output goes to stderr; stdout is kept
for values a caller may want to capture (an image ID, a URL).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class KitError(Exception):
    """A failure the user can act on; its message is the one line that says how."""


def exit_status(
    command: Callable[[], int],
    *,
    failures: tuple[type[Exception], ...] = (KitError,),
    failure_status: int = 1,
) -> int:
    """Run a command line's COMMAND for its exit status: one of FAILURES becomes one
    `error:` line on stderr and FAILURE_STATUS, an interrupt 130, never a traceback."""
    try:
        return command()
    except failures as error:
        print(f"error: {error}", file=sys.stderr)
        return failure_status
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def detail(message: str) -> None:
    print(f"    {message}", file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Announce `title`, run the block, then report its duration or that it failed."""
    say(f"{title} ...")
    started = time.monotonic()
    try:
        yield
    except BaseException:
        detail(f"failed after {time.monotonic() - started:.1f} s")
        raise
    detail(f"done in {time.monotonic() - started:.1f} s")


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
