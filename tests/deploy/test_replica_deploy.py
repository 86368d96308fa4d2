"""Recovery from a lost server by deploy, and a point-in-time restore, for real: web1
replicates over SFTP to an SFTP-only server on a Docker network this module creates (the
controller gives the key as WEBAPP_REPLICA_KEY_FILE, the inventory REPLICA_URL and the
pinned host key), loses its stack, volumes and app directory, and a plain `deploy.yml`
brings every note back; `restore.yml -e from=replica -e at=TIME` then goes back to a time
between two writes.

web1 is shared with the other deploy modules: this one wipes it first and leaves it
deployed without a replica (REPLICA_URL empty), as they expect it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import hosts, sftp_target
from harness.commands import docker
from harness.hosts import Host
from harness.lab import Lab, Release
from harness.repo import HOST_APP_DIR, HOST_COMPOSE
from harness.stack import wait_for

pytestmark = pytest.mark.deploy


@dataclass
class Replicated:
    host: Host
    inventory: Path


def _wipe(host: Host) -> None:
    """The server is lost: its containers, volumes and app directory go, without warning."""
    host.sh(f"[ -d {HOST_APP_DIR}/compose ] && {HOST_COMPOSE} down --volumes --timeout 0; "
            f"rm -rf {HOST_APP_DIR}", check=False)  # fmt: skip


@pytest.fixture(scope="module")
def replicated(lab: Lab, releases: dict[str, Release], tmp_path_factory) -> Iterator[Replicated]:
    web1 = next(host for host in lab.prod if host.name == "web1")
    workdir = tmp_path_factory.mktemp("replica-deploy")
    network = f"webapp-test-replica-deploy-{uuid.uuid4().hex[:6]}"
    hosts.create_network(network)
    target = None
    try:
        docker("network", "connect", network, web1.container)
        target = sftp_target.start(network, "webapp-test-replica-deploy-sftp", workdir)
        # Inside web1 the stack's containers have no Docker DNS for this network: the address.
        address = docker(
            "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
            target.container,
        ).stdout.strip()  # fmt: skip
        url = f"sftp://{sftp_target.USER}@{address}{sftp_target.HOME}/web1"
        inventory = hosts.inventory(
            workdir / "replica.ini", lab.key, {"prod": [web1]},
            {"REPLICA_URL": url, "WEBAPP_REPLICA_HOST_KEY": target.host_key},
        )  # fmt: skip
        lab.env["WEBAPP_REPLICA_KEY_FILE"] = str(target.key_file)
        _wipe(web1)
        yield Replicated(web1, inventory)
    finally:
        lab.env.pop("WEBAPP_REPLICA_KEY_FILE", None)
        # Back to a default deploy: no replica, a fresh database.
        _wipe(web1)
        lab.play("deploy.yml", *lab.deploy_args(releases["v1"]), "--limit", "web1",
                 label="replica-reset")  # fmt: skip
        if target is not None:
            target.stop()
        docker("network", "disconnect", "-f", network, web1.container, check=False)
        docker("network", "rm", network, check=False)


def _deploy(lab: Lab, release: Release, replicated: Replicated, label: str):
    return lab.play("deploy.yml", *lab.deploy_args(release), inventory=replicated.inventory,
                    label=label)  # fmt: skip


def _note(lab: Lab, host: Host, title: str) -> None:
    status, body = lab.http(host, "POST", "/api/notes", {"title": title, "body": "b", "tags": []})
    assert status == 201, body


def _titles(lab: Lab, host: Host) -> set[str]:
    status, page = lab.http(host, "GET", "/api/notes?limit=100")
    assert status == 200, page
    return {item["title"] for item in page["items"]}


def _shipped_since(lab: Lab, host: Host, written: float) -> bool:
    """The replica confirmed holding everything, later than WRITTEN (epoch seconds)."""
    shown = lab.sh(host, f"{HOST_COMPOSE} exec -T sqlite python -m webapp db replica status")
    try:
        status = json.loads(shown)
    except ValueError:
        return False
    lag = status["lag_s"]
    return status["problem"] is None and lag is not None and time.time() - lag > written


def test_a_lost_server_comes_back_with_its_notes_by_deploy_then_restores_to_a_time(
    lab: Lab, releases: dict[str, Release], replicated: Replicated
) -> None:
    web1 = replicated.host
    first = _deploy(lab, releases["v1"], replicated, "replica-first")
    assert first.returncode == 0, first.output[-3000:]
    key = web1.sh(f"stat -c '%u %a' {HOST_APP_DIR}/secrets/replica_key").stdout.strip()
    assert key == "10001 600"
    secret_line = Path(lab.env["WEBAPP_REPLICA_KEY_FILE"]).read_text().splitlines()[1]
    assert secret_line not in first.output

    written = time.time()
    _note(lab, web1, "before the mark")
    wait_for(lambda: _shipped_since(lab, web1, written), attempts=30, pause=1,
             what="the first write shipped")  # fmt: skip
    time.sleep(1.5)
    mark = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.5)
    written = time.time()
    _note(lab, web1, "after the mark")
    wait_for(lambda: _shipped_since(lab, web1, written), attempts=30, pause=1,
             what="the second write shipped")  # fmt: skip

    _wipe(web1)
    assert lab.http(web1, "GET", "/readyz")[0] == 0
    recovered = _deploy(lab, releases["v1"], replicated, "replica-recover")
    assert recovered.returncode == 0, recovered.output[-3000:]
    assert _titles(lab, web1) == {"before the mark", "after the mark"}
    logs = lab.sh(web1, f"{HOST_COMPOSE} logs sqlite")
    assert '"replica_start": "restored"' in logs

    restored = lab.play(
        "restore.yml", *lab.deploy_args(releases["v1"]), "-e", "target=web1",
        "-e", "from=replica", "-e", f"at={mark}", inventory=replicated.inventory,
        label="replica-restore-at",
    )  # fmt: skip
    assert restored.returncode == 0, restored.output[-3000:]
    assert _titles(lab, web1) == {"before the mark"}
    assert lab.http(web1, "GET", "/readyz")[0] == 200
