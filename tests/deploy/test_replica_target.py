"""provision.yml preparing a replica server for real: a bare systemd Debian 13 host of
this module's own in group [replica_targets] gets the SFTP-only account, and OpenSSH's
own sftp, pinned to the host key the play printed, uses it with the replica's key.

The account's sshd listens on the host's port 80 here (`replica_target_port=80`), the
one besides SSH that a test host publishes on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import hosts, playbook
from harness.hosts import Host
from harness.playbook import Play
from harness.repo import BUILD_RECORD
from harness.stack import wait_for
from webapp.ops import replica

pytestmark = pytest.mark.deploy
ROOT_DIR = "/srv/webapp-replica"
# Bounds: every command here answers in seconds; a play installs nothing new.
COMMAND_TIMEOUT_S = 60
PLAY_TIMEOUT_S = 600


@dataclass
class Target:
    host: Host
    inventory: Path
    admin_key: Path
    replica_key: Path
    workdir: Path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if not BUILD_RECORD.is_file():
        pytest.fail("build/image.json is missing; run `nox -s build` before the deploy tests")
    workdir = tmp_path_factory.mktemp("replica-target")
    admin_key = workdir / "admin_id_ed25519"
    public = hosts.ssh_key(admin_key)
    replica_key = workdir / "replica_id_ed25519"
    hosts.ssh_key(replica_key)
    host = hosts.start("backup1", hosts.host_image("bare-host"), public, systemd=True)
    try:
        inventory = workdir / "inventory.ini"
        ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
        inventory.write_text(
            "[prod]\n\n[replica_targets]\n"
            f"backup1 ansible_host=127.0.0.1 ansible_port={host.ssh_port} ansible_user=root "
            f"ansible_ssh_private_key_file={admin_key} ansible_ssh_common_args='{ssh_args}' "
            "ansible_python_interpreter=/usr/bin/python3 replica_target_port=80\n"
        )
        yield Target(host, inventory, admin_key, replica_key, workdir)
    finally:
        hosts.stop_all([host])


def _provision(target: Target) -> Play:
    return playbook.start(
        "provision.yml", "-e", "env=prod", inventory=target.inventory,
        env={"WEBAPP_REPLICA_KEY_FILE": str(target.replica_key)}, timeout=PLAY_TIMEOUT_S,
    ).wait()  # fmt: skip


def _run(argv: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )


def _sftp(target: Target, known_hosts: Path, batch: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH's sftp as the replica account, trusting only KNOWN_HOSTS."""
    return _run(
        [
            "sftp", "-b", "-", "-i", str(target.replica_key), "-P", str(target.host.public_port),
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "replica@127.0.0.1",
        ],
        stdin=batch,
    )  # fmt: skip


@pytest.fixture(scope="module")
def host_key(target: Target) -> str:
    """The first provision's printed WEBAPP_REPLICA_HOST_KEY value."""
    first = _provision(target)
    assert first.returncode == 0, first.output[-3000:]
    printed = re.search(r"WEBAPP_REPLICA_HOST_KEY=(ssh-ed25519 [A-Za-z0-9+/=]+)", first.output)
    assert printed is not None, first.output[-3000:]
    assert "REPLICA_URL=sftp://replica@backup1:80/data/SERVER" in first.flat()
    return printed.group(1)


def test_provision_prepares_an_sftp_only_replica_account(target: Target, host_key: str) -> None:
    port = str(target.host.public_port)

    # The instance offers its ed25519 key and no other kind.
    scanned = _run(["ssh-keyscan", "-p", port, "-t", "ed25519", "127.0.0.1"]).stdout
    assert host_key in scanned
    others = _run(["ssh-keyscan", "-p", port, "-t", "ecdsa,rsa", "127.0.0.1"]).stdout
    assert "ssh-" not in others and "ecdsa" not in others

    known_hosts = target.workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    upload = target.workdir / "ltx-sample"
    upload.write_text("replica bytes\n")
    batch = f"mkdir /data/web1\nput {upload} /data/web1/sample\nls /data/web1\n"
    put = _sftp(target, known_hosts, batch)
    assert put.returncode == 0, put.stderr
    assert "sample" in put.stdout
    stored = target.host.sh(
        f"stat -c %U {ROOT_DIR}/data/web1/sample; cat {ROOT_DIR}/data/web1/sample"
    )
    assert stored.stdout.splitlines() == ["replica", "replica bytes"]

    # Chrooted: nothing of the server's own files is there to see.
    outside = _sftp(target, known_hosts, "ls /etc\n")
    assert outside.returncode != 0
    # SFTP only: a command gets no shell.
    shell = _run(
        [
            "ssh", "-i", str(target.replica_key), "-p", port,
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "replica@127.0.0.1", "id",
        ]
    )  # fmt: skip
    assert "uid=" not in shell.stdout
    # Another key is refused, and so is a key pinned wrongly.
    stranger = target.workdir / "stranger_id_ed25519"
    hosts.ssh_key(stranger)
    refused = _run(
        [
            "sftp", "-b", "-", "-i", str(stranger), "-P", port,
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "replica@127.0.0.1",
        ],
        stdin="ls\n",
    )  # fmt: skip
    assert refused.returncode != 0 and "Permission denied" in refused.stderr

    # The server's own sshd is left as it was: root still logs in on port 22.
    admin = _run(
        [
            "ssh", "-i", str(target.admin_key), "-p", str(target.host.ssh_port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "root@127.0.0.1", "echo admin ok",
        ]
    )  # fmt: skip
    assert admin.stdout.strip() == "admin ok", admin.stderr

    again = _provision(target)
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed()["backup1"] == 0 and set(again.changed().values()) == {0}
    assert host_key in again.output


def test_the_kit_s_replicator_replicates_to_the_account_and_restores(
    target: Target, host_key: str, tmp_path: Path
) -> None:
    settings = replica.ReplicaSettings(
        url=f"sftp://replica@127.0.0.1:{target.host.public_port}/data/web2",
        max_lag_s=30, verify_interval_s=3600, host_key=host_key,
        key_file=str(target.replica_key),
    )  # fmt: skip
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE notes (title TEXT)")
    config = tmp_path / "litestream.yml"
    config.write_text(json.dumps(replica.config(settings, database)))
    replicating = subprocess.Popen(
        [replica.binary(), "replicate", "-config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with sqlite3.connect(database) as db:
            db.executemany("INSERT INTO notes VALUES (?)", [(f"n {i}",) for i in range(50)])
        wait_for(
            lambda: replica.exists(settings, database), attempts=30, pause=1,
            what="the replica on the provisioned account",
        )  # fmt: skip
    finally:
        # On SIGTERM Litestream ships what is outstanding before it exits.
        replicating.terminate()
        _, errors = replicating.communicate(timeout=COMMAND_TIMEOUT_S)
    restored = tmp_path / "restored.db"
    replica.restore(settings, database, restored)
    with sqlite3.connect(restored) as db:
        assert db.execute("SELECT count(*) FROM notes").fetchone() == (50,), errors
    stored = target.host.sh(f"find {ROOT_DIR}/data/web2 -type f | head -1 | xargs stat -c %U")
    assert stored.stdout.strip() == "replica"
