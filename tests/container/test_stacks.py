"""Dev and prod stacks on the real engine: health, the API through the published port,
persistence, scheduled backups and their restore, and the prod hardening."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.commands import run
from harness.repo import APP_UID, ROOT
from harness.stack import Stack, wait_for

BACKUP_KEEP = 2

# What `nox -s build` recorded in build/image.json.
Record = dict[str, Any]


@pytest.fixture(scope="module")
def dev(stacks: Any) -> Stack:
    stack: Stack = stacks("dev", "dev")
    stack.up()
    return stack


@pytest.fixture(scope="module")
def prod(stacks: Any, secret_file: Path) -> Stack:
    stack: Stack = stacks(
        "prod",
        "prod",
        WEBAPP_SECRET_KEY_FILE=str(secret_file),
        BACKUP_INTERVAL="2",
        BACKUP_KEEP=str(BACKUP_KEEP),
    )
    stack.up()
    return stack


def create_note(stack: Stack, title: str, body: str = "body", tags: list[str] | None = None):
    answer = stack.request(
        "POST", "/api/notes", {"title": title, "body": body, "tags": tags or []}
    )
    assert answer.status == 201, answer.body
    return answer


def api_round_trip(stack: Stack) -> None:
    marker = uuid.uuid4().hex[:8]
    created = create_note(stack, f"round trip {marker}", "first words", ["kit"])
    note = created.json()
    assert created.headers["Location"].endswith(f"/api/notes/{note['id']}")
    assert note["title"] == f"round trip {marker}" and note["tags"] == ["kit"]

    fetched = stack.request("GET", f"/api/notes/{note['id']}")
    assert fetched.status == 200 and fetched.json() == note
    etag = fetched.headers["ETag"]

    replaced = stack.request(
        "PUT",
        f"/api/notes/{note['id']}",
        {"title": f"round trip {marker}", "body": "second words", "tags": ["kit", "v2"]},
        headers={"If-Match": etag},
    )
    assert replaced.status == 200, replaced.body
    assert replaced.json()["body"] == "second words"
    assert replaced.headers["ETag"] != etag
    stale = stack.request(
        "PUT",
        f"/api/notes/{note['id']}",
        {"title": "lost update", "body": "", "tags": []},
        headers={"If-Match": etag},
    )
    assert stale.status == 412

    found = stack.request("GET", f"/api/notes?q={marker}").json()["items"]
    assert [item["id"] for item in found] == [note["id"]]

    assert stack.request("DELETE", f"/api/notes/{note['id']}").status == 204
    assert stack.request("GET", f"/api/notes/{note['id']}").status == 404


def test_dev_stack_is_healthy_and_serves_the_api(dev: Stack, build_record: Record) -> None:
    assert dev.inspect("sqlite")["State"]["Health"]["Status"] == "healthy"
    assert dev.inspect("app")["State"]["Health"]["Status"] == "healthy"
    assert dev.request("GET", "/readyz").status == 200
    version = dev.request("GET", "/version").json()
    assert version["app_env"] == "dev"
    assert version["revision"] == build_record["revision"]
    assert version["built_at"] == build_record["built_at"]
    api_round_trip(dev)


def test_dev_stack_runs_the_bind_mounted_source_with_reload(dev: Stack) -> None:
    app = dev.inspect("app")
    mounts = {m["Destination"]: m for m in app["Mounts"]}
    assert Path(mounts["/app/webapp"]["Source"]) == ROOT / "webapp"
    assert mounts["/app/webapp"]["RW"] is False
    assert "GUNICORN_RELOAD=1" in app["Config"]["Env"]


def test_dev_stack_reloads_when_the_source_changes(stacks: Any, tmp_path: Path) -> None:
    # A copy of the checkout, so the test can edit source without touching the real one.
    for name in ("compose", "webapp"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in (".env.dev", "gunicorn.conf.py"):
        shutil.copy2(ROOT / name, tmp_path / name)
    copy: Stack = stacks("dev", "reload")
    copy.checkout = tmp_path
    copy.up()
    with (tmp_path / "webapp" / "routes.py").open("a") as module:
        module.write("\n# edited by the reload test\n")

    def reloaded() -> bool:
        logs = copy.compose("logs", "--no-color", "app").stdout
        return "Worker reloading: /app/webapp/routes.py modified" in logs

    wait_for(reloaded, attempts=60, pause=0.5, what="gunicorn to reload the edited module")
    wait_for(lambda: copy.request("GET", "/readyz").status == 200, attempts=60, pause=0.5,
             what="the reloaded worker to serve")  # fmt: skip


def test_prod_stack_is_healthy_and_serves_the_api(prod: Stack, build_record: Record) -> None:
    assert prod.inspect("app")["State"]["Health"]["Status"] == "healthy"
    assert prod.inspect("app")["Image"] == build_record["id"]
    assert prod.request("GET", "/version").json()["app_env"] == "prod"
    api_round_trip(prod)


def test_metrics_are_on_loopback_and_the_stack_network_never_on_the_app_port(
    prod: Stack,
) -> None:
    create_note(prod, "counted")
    public = prod.request("GET", "/metrics")
    assert public.status == 404 and b"webapp_" not in public.body
    with urllib.request.urlopen(f"http://127.0.0.1:{prod.metrics_port}/metrics", timeout=15) as r:
        scraped = r.read().decode()
    created = [
        line
        for line in scraped.splitlines()
        if line.startswith('webapp_http_requests_total{method="POST",route="notes",status="201"}')
    ]
    assert created and float(created[0].split()[-1]) >= 1
    assert 'webapp_database_bytes{file="database"}' in scraped
    published = prod.inspect("app")["NetworkSettings"]["Ports"]
    assert {b["HostIp"] for b in published[f"{prod.metrics_port}/tcp"]} == {"127.0.0.1"}
    # The stack's other containers reach it by the service's name.
    status_line = prod.exec(
        "sqlite",
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/app/{prod.metrics_port} && "
        "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3",
    )
    assert status_line.split()[1] == "200", status_line


def test_a_note_survives_down_and_up(dev: Stack) -> None:
    note = create_note(dev, "kept across restarts").json()
    dev.down()
    dev.up()
    again = dev.request("GET", f"/api/notes/{note['id']}")
    assert again.status == 200 and again.json() == note


def test_operators_get_a_sqlite3_shell_on_the_live_database(prod: Stack) -> None:
    create_note(prod, "visible to sqlite3")
    assert prod.sql("PRAGMA integrity_check;") == "ok"
    assert prod.sql("PRAGMA journal_mode;") == "wal"
    tables = prod.sql(".tables")
    assert "notes" in tables


def test_prod_app_runs_non_root_read_only_without_capabilities(prod: Stack) -> None:
    app = prod.inspect("app")
    assert app["Config"]["User"] == f"{APP_UID}:{APP_UID}"
    assert app["HostConfig"]["ReadonlyRootfs"] is True
    assert app["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in app["HostConfig"]["SecurityOpt"]
    status = dict(
        line.split(":", 1) for line in prod.exec("app", "cat", "/proc/1/status").splitlines()
    )
    assert status["Uid"].split() == [str(APP_UID)] * 4
    assert int(status["CapEff"].strip(), 16) == 0
    assert int(status["NoNewPrivs"].strip()) == 1
    attempt = prod.compose("exec", "-T", "app", "touch", "/app/probe", check=False)
    assert attempt.returncode != 0 and "Read-only file system" in attempt.stderr
    # Scratch space and the data volume stay writable.
    prod.exec("app", "touch", "/tmp/probe", "/data/probe")
    prod.exec("app", "rm", "/tmp/probe", "/data/probe")


def test_no_secret_in_image_layers_history_inspect_or_logs(
    prod: Stack, build_record: Record, secret_value: str
) -> None:
    # The test can see the secret where it belongs, so its absence elsewhere means something.
    assert prod.exec("app", "cat", "/run/secrets/secret_key").strip() == secret_value
    assert prod.request("GET", "/readyz").status == 200

    places = {
        "docker inspect (image)": run(["docker", "image", "inspect", build_record["id"]]).stdout,
        "docker history": run(["docker", "history", "--no-trunc", build_record["image"]]).stdout,
        "docker inspect (app)": run(["docker", "inspect", prod.container("app")]).stdout,
        "docker inspect (sqlite)": run(["docker", "inspect", prod.container("sqlite")]).stdout,
        "logs": prod.compose("logs", "--no-color").stdout,
    }
    leaks = [where for where, text in places.items() if secret_value in text]
    assert leaks == []
    saved = subprocess_bytes(["docker", "save", build_record["image"]])
    assert len(saved) > build_record["base_image_size"] // 2
    assert secret_value.encode() not in saved


def subprocess_bytes(argv: list[str]) -> bytes:
    return subprocess.run(argv, capture_output=True, check=True, timeout=300).stdout


def test_scheduled_backups_appear_are_pruned_and_restore_into_a_fresh_volume(
    prod: Stack, stacks: Any, secret_file: Path, build_record: Record, tmp_path: Path
) -> None:
    def backups() -> list[str]:
        listing = prod.exec("sqlite", "ls", "-1", "/backups").split()
        return sorted(name for name in listing if name.endswith(".db"))

    notes = [create_note(prod, f"backed up {n}").json() for n in range(3)]
    expected = prod.request("GET", "/api/notes?limit=100").json()["items"]
    assert {n["id"] for n in notes} <= {item["id"] for item in expected}
    before = set(backups())
    seen: set[str] = set()

    def newer_backups() -> bool:
        seen.update(set(backups()) - before)
        return len(seen) >= BACKUP_KEEP + 1

    wait_for(newer_backups, attempts=60, pause=1, what="three new scheduled backups")
    # More were made than are kept, so pruning must bring the listing down to the limit
    # (between a new backup landing and the prune, there may briefly be one more).
    wait_for(lambda: len(backups()) <= BACKUP_KEEP, attempts=20, pause=0.5,
             what=f"pruning to the newest {BACKUP_KEEP}")  # fmt: skip
    chosen = backups()[-1]
    assert chosen in seen
    # Copy it out at once: with a 2 s interval the service prunes it within seconds.
    copy = tmp_path / chosen
    run(["docker", "cp", f"{prod.container('sqlite')}:/backups/{chosen}", str(copy)])
    assert copy.stat().st_size > 0

    fresh: Stack = stacks("prod", "restore", WEBAPP_SECRET_KEY_FILE=str(secret_file))
    fresh.up()
    assert fresh.request("GET", "/api/notes?limit=100").json()["items"] == []
    fresh.compose("stop")
    run([
        "docker", "run", "--rm", "--network", "none",
        "--volume", f"{copy}:/restore/{chosen}:ro",
        "--volume", f"{fresh.volume('app_data')}:/data",
        "--env", "DATABASE_URL=sqlite:////data/app.db",
        build_record["image"], "python", "-m", "webapp", "db", "restore", f"/restore/{chosen}",
    ])  # fmt: skip
    fresh.up()
    restored = fresh.request("GET", "/api/notes?limit=100").json()["items"]
    assert restored == expected
    assert fresh.sql("PRAGMA integrity_check;") == "ok"


def test_the_seed_command_builds_and_starts_a_healthy_prod_stack(
    stacks: Any, secret_file: Path, build_record: Record
) -> None:
    # `docker compose --env-file .env.prod up --build`, as the README gives it, on a machine
    # without a registry: the local base is exported, as the README says to.
    tag = f"webapp:seed-test-{uuid.uuid4().hex[:6]}"
    seed: Stack = stacks("prod", "seed", WEBAPP_SECRET_KEY_FILE=str(secret_file),
                         BASE_IMAGE=build_record["base_image"])  # fmt: skip
    seed.image = tag
    try:
        seed.compose("up", "--build", "--detach", "--wait", "--wait-timeout", "240")
        assert seed.inspect("app")["State"]["Health"]["Status"] == "healthy"
        assert seed.inspect("app")["Config"]["Image"] == tag
        assert seed.request("GET", "/readyz").status == 200
        assert create_note(seed, "seeded").json()["title"] == "seeded"
    finally:
        seed.down(volumes=True)
        run(["docker", "image", "rm", tag], check=False)
