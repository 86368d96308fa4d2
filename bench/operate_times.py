"""Times of the operating commands (status, logs, exec, audit) against deployed test hosts.

Each run is what a user types: a fresh `python -m kit.operate VERB prod -i INVENTORY`
process, on an environment of one host and on one of two. Its SSH connections are new
unless the figure says `warm`: a run of its own temporary directory finds no
ControlMaster socket, as a first command does, while a warm run reuses the masters the
run before it left open (they are kept 60 s). Every figure is the median of its runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import deploy_times
from harness import lab as labs
from harness.commands import run
from harness.lab import Lab
from kit import console
from kit.console import KitError

# Bounds: a command here answers in seconds on a healthy host.
COMMAND_TIMEOUT_S = 120
SSH_EXIT_TIMEOUT_S = 10
RUNS = 5
QUICK_RUNS = 3
# `logs` is bounded in time, never followed: the lines of the last minutes.
LOGS_SINCE = "10m"


@dataclass(frozen=True)
class Command:
    key: str
    args: tuple[str, ...]
    two_hosts: bool
    warm: bool = False


def commands(first_host: str) -> list[Command]:
    """Every figure's command, in the order they run; `first_host` is the one exec uses."""
    out = []
    for two, label in ((False, "1host"), (True, "2hosts")):
        out += [
            Command(f"operate.status_{label}_s", ("status",), two),
            Command(f"operate.status_{label}_warm_s", ("status",), two, warm=True),
            Command(f"operate.status_json_{label}_s", ("status", "--json"), two),
            Command(f"operate.logs_{label}_s", ("logs", "app", "--since", LOGS_SINCE), two),
            Command(f"operate.audit_{label}_s", ("audit",), two),
        ]
    out.append(Command("operate.exec_s", ("exec", "--host", first_host, "app", "true"), False))
    return out


@contextmanager
def connections(warm_dir: Path | None) -> Iterator[dict[str, str]]:
    """The environment of one run: TMPDIR (where kit.operate keeps its ControlMaster
    sockets) is `warm_dir`, else a new directory whose masters are closed after the run,
    so no idle connection outlives the measurement."""
    if warm_dir is not None:
        yield {**os.environ, "TMPDIR": str(warm_dir)}
        return
    # Short: a control socket's path must stay under about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="op", dir="/tmp") as scratch:
        try:
            yield {**os.environ, "TMPDIR": scratch}
        finally:
            close_masters(Path(scratch))


def close_masters(directory: Path) -> None:
    for socket in directory.glob("webapp-ssh-*/*"):
        # With the socket's own path, ssh needs no real host name to stop its master.
        run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "placeholder"],
            check=False, timeout=SSH_EXIT_TIMEOUT_S,
        )  # fmt: skip


def timed(argv: list[str], environ: dict[str, str]) -> tuple[float, str]:
    """Seconds one command took, and its output; a failure stops the bench naming it."""
    began = time.monotonic()
    done = run(argv, env=environ, check=False, timeout=COMMAND_TIMEOUT_S)
    took = time.monotonic() - began
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise KitError(f"`{' '.join(argv[2:])}` exited {done.returncode}: {last}")
    return took, done.stdout


def inventories(lab: Lab) -> tuple[Path, Path]:
    """An environment `prod` of the lab's first host alone, and the lab's own of two."""
    if len(lab.hosts) < 2:
        raise KitError(f"the operate bench needs 2 test hosts, the lab has {len(lab.hosts)}")
    return deploy_times.inventory_of(lab, lab.hosts[:1]), lab.inventory


def measure(lab: Lab, *, quick: bool) -> tuple[dict[str, float], dict[str, object]]:
    """The median of each command's runs, and the details: every run's seconds, the
    first status on 2 hosts (the inventory listing and its connections new), log lines."""
    runs = QUICK_RUNS if quick else RUNS
    one, two = inventories(lab)
    python = [sys.executable, "-m", "kit.operate"]
    out: dict[str, float] = {}
    samples: dict[str, list[float]] = {}
    details: dict[str, object] = {"operate_runs": runs, "operate_samples_s": samples}
    with tempfile.TemporaryDirectory(prefix="opw", dir="/tmp") as warm:
        warm_dir = Path(warm)
        try:
            with console.step("First status: inventory listings and connections new"):
                with connections(None) as environ:
                    timed([*python, "status", "prod", "-i", str(one)], environ)
                with connections(None) as environ:
                    out["operate.status_first_s"], _ = timed(
                        [*python, "status", "prod", "-i", str(two)], environ
                    )
            for command in commands(lab.hosts[0].name):
                inventory = two if command.two_hosts else one
                argv = [*python, command.args[0], "prod", "-i", str(inventory), *command.args[1:]]
                with console.step(f"{command.key}: {runs} runs of `{' '.join(command.args)}`"):
                    if command.warm:
                        with connections(warm_dir) as environ:
                            timed(argv, environ)  # opens the masters the runs reuse
                    seconds = []
                    for _ in range(runs):
                        with connections(warm_dir if command.warm else None) as environ:
                            took, output = timed(argv, environ)
                        seconds.append(round(took, 3))
                    if command.args[0] == "logs":
                        details[f"{command.key}_lines"] = len(output.splitlines())
                samples[command.key] = seconds
                out[command.key] = statistics.median(seconds)
                console.detail(f"median {out[command.key]:.2f} s of {seconds}")
        finally:
            close_masters(warm_dir)
    return out, details


@contextmanager
def deployed_lab(workdir: Path, record: dict[str, str], logs: Path) -> Iterator[Lab]:
    """Two test hosts running the build record's release, deployed to both at once."""
    with labs.running(
        workdir / "lab", "benchop", base_image=record["id"], prod=["bench1", "bench2"], logs=logs
    ) as lab:
        with console.step("Deploying the build to both test hosts"):
            play = lab.deploy(lab.releases["v1"], "-e", "webapp_serial=2")
        if play.returncode != 0:
            raise KitError(f"the deploy for the operate bench failed; see {play.log}")
        yield lab
