"""The prod stack replicating off its volume: the sqlite service ships the database to a
file:// replica (a host directory mounted into it, standing in for another disk), a new
stack on fresh volumes restores it before it migrates, and a replica that goes away turns
the sqlite service unhealthy with the reason in its log. The replicator's own metrics
answer on the host's 127.0.0.1 and on the stack's network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness import http
from harness.repo import APP_UID
from harness.stack import Stack, wait_for

# The replica's mount, added to the prod stack's files by a test-only override.
OVERRIDE = """\
services:
  sqlite:
    volumes:
      - {directory}:/replica
"""


def _replica_stack(stacks: Any, name: str, secret_file: Path, override: Path) -> Stack:
    files = f"compose/compose.yaml:compose/compose.prod.yaml:{override}"
    stack: Stack = stacks(
        "prod",
        name,
        WEBAPP_SECRET_KEY_FILE=str(secret_file),
        COMPOSE_FILE=files,
        REPLICA_URL="file:///replica",
        REPLICA_MAX_LAG="10",
    )
    return stack


def _status(stack: Stack) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        stack.exec("sqlite", "python", "-m", "webapp", "db", "replica", "status")
    )
    return shown


def _health(stack: Stack) -> str:
    state: str = stack.inspect("sqlite")["State"]["Health"]["Status"]
    return state


def _the_replicator_s_metrics_are_on_loopback_and_the_stack_network(stack: Stack) -> None:
    answer = http.once(stack.replica_metrics_port, "GET", "/metrics", timeout=15)
    assert answer.status == 200, answer.body[:200]
    samples = dict(
        line.rsplit(" ", 1) for line in answer.body.decode().splitlines() if line[:1] != "#"
    )
    assert float(samples['litestream_txid{db="/data/app.db"}']) >= 1
    assert float(samples['litestream_db_size{db="/data/app.db"}']) > 0
    assert samples['litestream_sync_error_count{db="/data/app.db"}'] == "0"
    published = stack.inspect("sqlite")["NetworkSettings"]["Ports"]
    bindings = published[f"{stack.replica_metrics_port}/tcp"]
    assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}
    status_line = stack.exec(
        "app",
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/sqlite/{stack.replica_metrics_port} && "
        "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3",
    )
    assert status_line.split()[1] == "200", status_line


def test_a_new_stack_restores_the_replica_and_a_lost_replica_turns_sqlite_unhealthy(
    stacks: Any, secret_file: Path, tmp_path: Path
) -> None:
    replica_dir = tmp_path / "replica"
    replica_dir.mkdir()
    shutil.chown(replica_dir, APP_UID, APP_UID)
    override = tmp_path / "compose.replica.yaml"
    override.write_text(OVERRIDE.format(directory=replica_dir))

    old = _replica_stack(stacks, "replica-old", secret_file, override)
    old.up()
    titles = [f"replicated {n}" for n in range(5)]
    for title in titles:
        answer = old.request("POST", "/api/notes", {"title": title, "body": "b", "tags": []})
        assert answer.status == 201, answer.body
    written = old.sql("SELECT count(*) FROM notes;")

    def confirmed() -> bool:
        status = _status(old)
        return status["problem"] is None and status["lag_s"] is not None

    wait_for(confirmed, attempts=30, pause=1, what="the replica confirming the writes")
    ready = old.request("GET", "/readyz").json()
    assert ready["replica"]["url"] == "file:///replica"
    _the_replicator_s_metrics_are_on_loopback_and_the_stack_network(old)
    # The server is lost: its stack and volumes go, the replica directory stays.
    old.down(volumes=True)

    new = _replica_stack(stacks, "replica-new", secret_file, override)
    new.up()
    assert new.sql("SELECT count(*) FROM notes;") == written
    items = new.request("GET", "/api/notes?limit=100").json()["items"]
    assert set(titles) <= {item["title"] for item in items}
    logs = new.compose("logs", "sqlite").stdout
    assert '"replica_start": "restored"' in logs

    # The replica goes away: nothing can be shipped, the lag passes REPLICA_MAX_LAG=10.
    shutil.rmtree(replica_dir)
    answer = new.request("POST", "/api/notes", {"title": "unshipped", "body": "b", "tags": []})
    assert answer.status == 201
    wait_for(lambda: _health(new) == "unhealthy", attempts=90, pause=1,
             what="the sqlite service turning unhealthy")  # fmt: skip
    logs = new.compose("logs", "sqlite").stdout
    reasons = [line for line in logs.splitlines() if "not ready: the replica" in line]
    assert reasons and "over REPLICA_MAX_LAG=10" in reasons[0], logs[-2000:]
    # The app keeps serving from the local database.
    assert new.request("GET", "/api/notes?limit=1").status == 200
