"""The prod stack replicating over SFTP: to a real OpenSSH server (SFTP only, key only, its
ed25519 host key pinned) on a Docker network this module creates, with the private key
mounted into the sqlite service from the host file WEBAPP_REPLICA_KEY_FILE names. A host
key that does not match is refused in one line, and a new stack on fresh volumes
restores the notes over SFTP before it migrates."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import hosts, sftp_target
from harness.commands import docker, run
from harness.sftp_target import SftpTarget
from harness.stack import Stack, wait_for

# The sqlite service joins the target's network; nothing else reaches the server.
OVERRIDE = """\
services:
  sqlite:
    networks: [default, replica]
networks:
  replica:
    name: {network}
    external: true
"""


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SftpTarget, Path]]:
    workdir = tmp_path_factory.mktemp("sftp")
    network = f"webapp-test-replica-sftp-{uuid.uuid4().hex[:6]}"
    docker("network", "create", network)
    override = workdir / "compose.replica-network.yaml"
    override.write_text(OVERRIDE.format(network=network))
    started = None
    try:
        started = sftp_target.start(network, "webapp-test-replica-sftp", workdir)
        yield started, override
    finally:
        if started is not None:
            started.stop()
        docker("network", "rm", network, check=False)


def _stack(stacks: Any, name: str, secret_file: Path, target: SftpTarget, override: Path,
           **variables: str) -> Stack:  # fmt: skip
    settings = {
        "WEBAPP_SECRET_KEY_FILE": str(secret_file),
        "COMPOSE_FILE": f"compose/compose.yaml:compose/compose.prod.yaml:{override}",
        "REPLICA_URL": target.url("notes"),
        "WEBAPP_REPLICA_HOST_KEY": target.host_key,
        "WEBAPP_REPLICA_KEY_FILE": str(target.key_file),
    }
    stack: Stack = stacks("prod", name, **{**settings, **variables})
    return stack


def test_the_server_offers_only_its_ed25519_key_and_only_sftp(
    target: tuple[SftpTarget, Path],
) -> None:
    server, _override = target
    offered = server.sh("ssh-keyscan -p 22 127.0.0.1 | grep -v '^#'").split("\n")
    assert [line.split()[1] for line in offered if line.strip()] == ["ssh-ed25519"]
    docker("cp", str(server.key_file), f"{server.container}:/tmp/client_key")
    login = server.sh(
        "chmod 0600 /tmp/client_key && ssh -i /tmp/client_key -o BatchMode=yes "
        "-o StrictHostKeyChecking=no replica@127.0.0.1 id"
    )
    assert "uid=" not in login and "sftp connections only" in login, login
    listing = server.sh(
        "echo ls | sftp -i /tmp/client_key -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-b - replica@127.0.0.1; echo exit=$?"
    )
    assert "exit=0" in listing, listing


def test_a_host_key_other_than_the_pinned_one_is_refused_in_one_line(
    stacks: Any, secret_file: Path, target: tuple[SftpTarget, Path], tmp_path: Path
) -> None:
    server, override = target
    other = hosts.ssh_key(tmp_path / "other_host_key").read_text()
    stack = _stack(
        stacks, "sftp-badkey", secret_file, server, override,
        WEBAPP_REPLICA_HOST_KEY=" ".join(other.split()[:2]),
    )  # fmt: skip
    # The sqlite service's own command (db serve), once, on fresh volumes.
    refused = stack.compose("run", "--rm", "--no-deps", "-T", "sqlite", check=False)
    assert refused.returncode == 1, refused.stderr[-2000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith("webapp:")]
    assert len(errors) == 1, refused.stderr[-2000:]
    assert "host key mismatch" in errors[0] and "Traceback" not in refused.stderr
    assert server.files("notes") == []


def test_the_stack_replicates_over_sftp_and_a_new_stack_restores_from_it(
    stacks: Any, secret_file: Path, target: tuple[SftpTarget, Path]
) -> None:
    server, override = target
    old = _stack(stacks, "sftp-old", secret_file, server, override)
    old.up()
    mounted = old.exec("sqlite", "stat", "-c", "%u %a", "/run/secrets/replica_key").strip()
    assert mounted == "10001 600"
    titles = [f"over sftp {n}" for n in range(5)]
    for title in titles:
        answer = old.request("POST", "/api/notes", {"title": title, "body": "b", "tags": []})
        assert answer.status == 201, answer.body
    written = old.sql("SELECT count(*) FROM notes;")

    def confirmed() -> bool:
        shown = old.exec("sqlite", "python", "-m", "webapp", "db", "replica", "status")
        status = json.loads(shown)
        return status["problem"] is None and status["lag_s"] is not None

    wait_for(confirmed, attempts=30, pause=1, what="the SFTP replica confirming the writes")
    assert server.files("notes"), "nothing reached the SFTP server"
    # The key never shows in the container's configuration or the logs.
    key = server.key_file.read_text()
    marker = key.splitlines()[1]
    inspected = run(["docker", "inspect", old.container("sqlite")]).stdout
    assert marker not in inspected and marker not in old.compose("logs").stdout
    # The server is lost: its stack and volumes go, the SFTP server keeps the replica.
    old.down(volumes=True)

    new = _stack(stacks, "sftp-new", secret_file, server, override)
    new.up()
    assert new.sql("SELECT count(*) FROM notes;") == written
    items = new.request("GET", "/api/notes?limit=100").json()["items"]
    assert set(titles) <= {item["title"] for item in items}
    assert '"replica_start": "restored"' in new.compose("logs", "sqlite").stdout
