"""Deploy times on SSH + Docker test hosts: the kit's deploy against the naive way, and
a redeploy under steady load.

The hosts are the deploy tests' own (tests/deploy/hosts.py): containers with sshd and a
Docker engine, reached only through ports on 127.0.0.1. The kit's deploy is the real
`ansible-playbook deploy.yml`; the naive way is `docker save` piped over SSH into
`docker load`, then `docker compose up`, for every host and every release.
"""

# The bench drives docker, wrk and ssh by name, as the kit does (kit/** has the same
# exemption): every argument is built here, none comes from a user.
# ruff: noqa: S603, S607

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from kit import console
from kit.console import KitError
from tests.deploy import hosts

ANSIBLE_DIR = Path("ansible").resolve()
# Kept after the run (reports/ is git-ignored), with ansible's per-task times.
LOGS = Path("reports/deploy-logs")
SHIPPED = re.compile(r"Shipping \S+: (\d+) bytes")
# Bounds for every loop: no deploy and no load run may outlast these.
DEPLOY_TIMEOUT_S = 900
LOAD_INTERVAL_S = 0.02
LOAD_REQUEST_TIMEOUT_S = 5


def _playbook() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.is_file() else shutil.which("ansible-playbook")
    if not found:
        raise KitError("ansible-playbook: command not found; run the bench with `nox -s bench`")
    return found


@dataclass
class Lab:
    workdir: Path
    key: Path
    inventory: Path
    hosts: list[hosts.Host]
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(36))
    deploys: int = 0

    def deploy(self, record: Path) -> tuple[float, list[int]]:
        """`deploy.yml -e env=prod` with this build record: seconds and bytes per host."""
        command = [
            _playbook(), "-i", str(self.inventory), "deploy.yml", "-e", "env=prod",
            "-e", f"webapp_build_record={record}",
            "-e", f"webapp_ship_cache={self.workdir / 'ship'}",
        ]  # fmt: skip
        environ = {
            **os.environ,
            "WEBAPP_SECRET_KEY": self.secret,
            "ANSIBLE_NOCOLOR": "1",
            # Per-task times in the kept log: where a slow deploy spends its time.
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            "PATH": f"{Path(_playbook()).parent}:{os.environ['PATH']}",
        }
        started = time.monotonic()
        result = subprocess.run(
            command, cwd=ANSIBLE_DIR, env=environ, capture_output=True, text=True,
            timeout=DEPLOY_TIMEOUT_S, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        output = result.stdout + result.stderr
        LOGS.mkdir(parents=True, exist_ok=True)
        self.deploys += 1
        log = LOGS / f"{self.deploys}-deploy-{record.stem}.log"
        log.write_text(output)
        if result.returncode != 0:
            raise KitError(f"the bench deploy of {record.stem} failed (exit "
                           f"{result.returncode}); see {log}")  # fmt: skip
        return seconds, [int(n) for n in SHIPPED.findall(output)]

    def ssh(self, host: hosts.Host, command: str, stdin_path: Path | None = None) -> None:
        arguments = [
            "ssh", "-i", str(self.key), "-p", str(host.ssh_port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "root@127.0.0.1", command,
        ]  # fmt: skip
        with open(stdin_path or os.devnull, "rb") as stdin:
            result = subprocess.run(
                arguments, stdin=stdin, capture_output=True, text=True,
                timeout=DEPLOY_TIMEOUT_S, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise KitError(f"naive deploy step `{command[:60]}` on {host.name} failed: {last}")

    def naive_deploy(self, image: str) -> tuple[float, int]:
        """Full `docker save` per host over SSH, `docker load`, `compose up --wait`."""
        started = time.monotonic()
        archive = self.workdir / "naive.tar"
        shipped = 0
        for host in self.hosts:
            # The naive way keeps no cache: it exports the image for every host it ships.
            subprocess.run(["docker", "save", "--output", str(archive), image], check=True)
            shipped = archive.stat().st_size
            self.ssh(host, "docker load --quiet", archive)
            self.ssh(
                host,
                f"cd /opt/webapp && WEBAPP_IMAGE={image} docker compose --env-file .env.prod "
                "up --detach --wait --remove-orphans",
            )
            archive.unlink()
        return time.monotonic() - started, shipped


def start_lab(workdir: Path, count: int) -> Lab:
    fleet = hosts.start_fleet(workdir, [f"bench{number}" for number in range(1, count + 1)])
    return Lab(workdir, fleet.key, fleet.inventory, fleet.prod)


@dataclass
class LoadRecord:
    requests: int = 0
    failed: int = 0
    max_gap_ms: float = 0.0
    max_latency_ms: float = 0.0


def steady_load(port: int, stop: threading.Event, record: LoadRecord, limit_s: float) -> None:
    """GET /api/notes every LOAD_INTERVAL_S until `stop` (or `limit_s`) on 127.0.0.1."""
    began = last_success = time.monotonic()
    while not stop.is_set() and time.monotonic() - began < limit_s:
        sent = time.monotonic()
        try:
            url = f"http://127.0.0.1:{port}/api/notes?limit=5"
            with urllib.request.urlopen(url, timeout=LOAD_REQUEST_TIMEOUT_S) as response:
                ok = response.status == 200
                response.read()
        except OSError:
            ok = False
        done = time.monotonic()
        record.requests += 1
        record.max_latency_ms = max(record.max_latency_ms, 1000 * (done - sent))
        if ok:
            record.max_gap_ms = max(record.max_gap_ms, 1000 * (done - last_success))
            last_success = done
        else:
            record.failed += 1
        time.sleep(LOAD_INTERVAL_S)
    record.max_gap_ms = max(record.max_gap_ms, 1000 * (time.monotonic() - last_success))


def deploy_under_load(lab: Lab, record_path: Path) -> tuple[float, list[int], LoadRecord]:
    """Deploy `record_path` while steady requests go to the first host."""
    record = LoadRecord()
    stop = threading.Event()
    loader = threading.Thread(
        target=steady_load,
        args=(lab.hosts[0].app_port, stop, record, DEPLOY_TIMEOUT_S + 60),
        daemon=True,
    )
    loader.start()
    try:
        time.sleep(1)  # a baseline of successes before the deploy starts
        seconds, shipped = lab.deploy(record_path)
        time.sleep(1)  # and after it, so a slow recovery still shows as a gap
    finally:
        stop.set()
        loader.join(timeout=LOAD_REQUEST_TIMEOUT_S + 5)
    return seconds, shipped, record


def measure(lab: Lab, releases: dict[str, Path], naive_image: str, *, quick: bool) -> dict:
    """First deploy, no-change re-run, code-change redeploy, redeploy under load, naive."""
    out: dict = {}
    with console.step(f"First deploy to {len(lab.hosts)} test host(s)"):
        out["deploy.first_s"], first_bytes = lab.deploy(releases["v1"])
        console.detail(f"{out['deploy.first_s']:.1f} s, shipped {first_bytes} bytes")
    with console.step("No-change re-run"):
        out["deploy.noop_s"], _ = lab.deploy(releases["v1"])
    if quick:
        # Quick mode: one code-change deploy, measured while under load, serves both.
        with console.step("Code-change redeploy under steady load on the first host"):
            seconds, shipped, load = deploy_under_load(lab, releases["v2"])
        out["deploy.code_change_s"] = seconds
    else:
        with console.step("Code-change redeploy"):
            out["deploy.code_change_s"], shipped = lab.deploy(releases["v2"])
        with console.step("Redeploy of a new build under steady load on the first host"):
            _, _, load = deploy_under_load(lab, releases["v3"])
    out["deploy.code_change_bytes_per_host"] = max(shipped) if shipped else 0
    console.detail(
        f"code change: {out['deploy.code_change_s']:.1f} s, shipped {shipped} bytes; under "
        f"load {load.failed}/{load.requests} failed, max gap {load.max_gap_ms:.0f} ms"
    )
    with console.step("Naive code-change deploy: full `docker save` + `compose up` per host"):
        out["deploy.naive_code_change_s"], out["deploy.naive_bytes_per_host"] = lab.naive_deploy(
            naive_image
        )
    out.update(
        {
            "redeploy.requests": load.requests,
            "redeploy.failed": load.failed,
            "redeploy.max_gap_ms": load.max_gap_ms,
            "redeploy_max_latency_ms": load.max_latency_ms,
        }
    )
    return out
