"""The controller-side halves of the deploy, without any host: the plan's checks, the
choice of layers to ship, and the real plays refusing before they contact a host (whose
inventory hosts sit on closed loopback ports, so a contacted one shows as UNREACHABLE)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest

from harness import playbook, ports, secret_files
from harness.playbook import Play
from harness.repo import BUILD_RECORD, ROOT
from kit import deploy_plan, ship
from kit.console import KitError


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ([], 0),
        ([["a", "b", "x"]], 2),
        ([["a"], ["a", "b", "c", "d"]], 3),
        # Same layer, different base: its chain differs, so it is not reusable.
        ([["z", "b", "c"]], 0),
    ],
)
def test_only_a_shared_chain_of_layers_counts_as_present(present, expected) -> None:
    assert ship.present_prefix(["a", "b", "c"], present) == expected


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose").mkdir()
    (tmp_path / "compose" / "compose.yaml").write_text("services: {}\n")
    (tmp_path / ".env.prod").write_text(
        "COMPOSE_FILE=compose/compose.yaml\nCOMPOSE_PROJECT_NAME=p\nWEBAPP_PORT=8000\nAPP_ENV=prod\n"
    )
    return tmp_path


def test_an_unknown_environment_names_the_valid_ones(project: Path) -> None:
    (project / ".env.dev").write_text("APP_ENV=dev\n")
    with pytest.raises(KitError, match=r"env=staging .* use one of: dev, prod \("):
        deploy_plan.check("staging", ["dev", "prod", "bare"], project / "image.json")


def test_an_environment_needs_an_inventory_group(project: Path) -> None:
    with pytest.raises(KitError, match=r"env=prod .* use one of:  \("):
        deploy_plan.check("prod", ["dev"], project / "image.json")


def test_an_env_file_without_required_keys_is_refused(project: Path) -> None:
    (project / ".env.prod").write_text("COMPOSE_FILE=compose/compose.yaml\nAPP_ENV=prod\n")
    with pytest.raises(KitError, match=r"\.env\.prod lacks COMPOSE_PROJECT_NAME, WEBAPP_PORT"):
        deploy_plan.check("prod", ["prod"], project / "image.json")


def test_an_env_file_naming_a_missing_compose_file_is_refused(project: Path) -> None:
    with (project / ".env.prod").open("a") as env:
        env.write("COMPOSE_FILE=compose/compose.yaml:compose/gone.yaml\n")
    with pytest.raises(KitError, match=r"COMPOSE_FILE names compose/gone\.yaml"):
        deploy_plan.check("prod", ["prod"], project / "image.json")


@pytest.mark.parametrize(
    "ports",
    # Both set to one port, or the app's set to the metrics' default (9180, when unset).
    ["WEBAPP_PORT=8000\nWEBAPP_METRICS_PORT=8000\n", "WEBAPP_PORT=9180\n"],
)
def test_the_metrics_cannot_share_the_apps_host_port(project: Path, ports: str) -> None:
    (project / ".env.prod").write_text(
        "COMPOSE_FILE=compose/compose.yaml\nCOMPOSE_PROJECT_NAME=p\nAPP_ENV=prod\n" + ports
    )
    with pytest.raises(KitError, match=r"WEBAPP_METRICS_PORT=\d+ is WEBAPP_PORT too"):
        deploy_plan.check("prod", ["prod"], project / "image.json")


def test_an_sftp_replica_needs_a_pinned_host_key(project: Path) -> None:
    with (project / ".env.prod").open("a") as env:
        env.write("REPLICA_URL=sftp://replica@backup.example/srv/webapp\n")
    with pytest.raises(
        KitError, match=r"REPLICA_URL is sftp:// but WEBAPP_REPLICA_HOST_KEY is not"
    ):
        deploy_plan.check("prod", ["prod"], project / "image.json")


@pytest.mark.parametrize(
    ("ports", "message"),
    [
        ("WEBAPP_PORT=9182\n", r"WEBAPP_PROXY_METRICS_PORT=9182 is WEBAPP_PORT too"),
        (
            "WEBAPP_PORT=8000\nWEBAPP_METRICS_PORT=9184\n",
            r"WEBAPP_REPLICA_METRICS_PORT=9184 is WEBAPP_METRICS_PORT too",
        ),
    ],
)
def test_the_proxy_s_and_replicator_s_metrics_need_host_ports_of_their_own(
    project: Path, ports: str, message: str
) -> None:
    (project / ".env.prod").write_text(
        "COMPOSE_FILE=compose/compose.yaml\nCOMPOSE_PROJECT_NAME=p\nAPP_ENV=prod\n" + ports
    )
    with pytest.raises(KitError, match=message):
        deploy_plan.check("prod", ["prod"], project / "image.json")


def test_a_missing_build_record_says_to_build(project: Path) -> None:
    with pytest.raises(KitError, match=r"image\.json is missing; run `nox -s build` first"):
        deploy_plan.check("prod", ["prod"], project / "image.json")


def test_a_prod_key_the_app_refuses_is_refused_saying_where_to_set_it(project: Path) -> None:
    with pytest.raises(
        KitError,
        match=r"The prod secret key .+; export WEBAPP_SECRET_KEY or set vault_webapp_secret_key "
        r"in group_vars/prod/vault\.yml",
    ):
        deploy_plan.check("prod", ["prod"], project / "image.json", secret="short")


def test_a_good_key_passes_on_to_the_build_check(project: Path) -> None:
    with pytest.raises(KitError, match=r"image\.json is missing"):
        deploy_plan.check(
            "prod", ["prod"], project / "image.json", secret=secrets.token_urlsafe(48)
        )


def test_the_check_refuses_two_hosts_on_the_env_file_s_replica(project: Path) -> None:
    with (project / ".env.prod").open("a") as env:
        env.write("REPLICA_URL=file:///srv/replica/webapp\n")
    hosts: dict[str, dict[str, str]] = {"web1": {}, "web2": {}}
    with pytest.raises(KitError, match=r"web1 and web2 would both replicate to file:///srv/"):
        deploy_plan.check("prod", ["prod"], project / "image.json", hosts)
    # A host with a replica of its own in its overrides passes on to the build check.
    hosts["web2"] = {"REPLICA_URL": "file:///srv/replica/web2"}
    with pytest.raises(KitError, match=r"image\.json is missing"):
        deploy_plan.check("prod", ["prod"], project / "image.json", hosts)


@pytest.mark.parametrize("hosts", ["web1", "[1]", '{"web1": "x"}'])
def test_the_check_command_refuses_hosts_that_are_no_json_object_of_overrides(
    project: Path, hosts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        deploy_plan.main(["check", "--env", "prod", "--groups", "prod", "--hosts", hosts])
    assert exit_.value.code == 2
    assert "argument --hosts: is not" in capsys.readouterr().err


@pytest.mark.container
def test_a_record_of_an_image_not_on_the_controller_is_refused(project: Path) -> None:
    record = project / "image.json"
    record.write_text(json.dumps({"image": "webapp:not-built-here", "id": "sha256:0"}))
    with pytest.raises(KitError, match=r"webapp:not-built-here .* run `nox -s build` again"):
        deploy_plan.check("prod", ["prod"], record)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("sftp://replica@backup.example/srv/webapp", "sftp://replica@backup.example/srv/webapp/"),
        (
            "sftp://replica@backup.example/srv/webapp",
            "sftp://replica@Backup.Example:22/srv/webapp",
        ),
        (
            "sftp://replica@backup.example/srv/webapp",
            "sftp://replica@backup.example/srv//./webapp",
        ),
        ("file:///mnt/replica/webapp", "file:///mnt/replica/webapp/"),
    ],
)
def test_spellings_of_one_replica_are_one_replica(one: str, other: str) -> None:
    assert deploy_plan.replica_identity(one) == deploy_plan.replica_identity(other)
    with pytest.raises(KitError, match=r"^web1 and web2 would both replicate to "):
        deploy_plan.shared_replicas([("web1", one), ("web2", other)])


@pytest.mark.parametrize(
    "other",
    [
        "sftp://replica@backup.example/srv/webapp/web2",
        "sftp://replica@backup.example:2222/srv/webapp",
        "sftp://other@backup.example/srv/webapp",
        "sftp://replica@backup2.example/srv/webapp",
        "file:///srv/webapp",
    ],
)
def test_distinct_replicas_and_hosts_without_one_pass(other: str) -> None:
    one = "sftp://replica@backup.example/srv/webapp"
    assert deploy_plan.replica_identity(one) != deploy_plan.replica_identity(other)
    deploy_plan.shared_replicas([("web1", one), ("web2", other), ("web3", ""), ("web4", "")])


def _checkout(root: Path, replica_url: str) -> Path:
    """A repository view whose .env.prod sets REPLICA_URL, with the real compose/ and kit/."""
    root.mkdir()
    env = (ROOT / ".env.prod").read_text() + f"REPLICA_URL={replica_url}\n"
    (root / ".env.prod").write_text(env)
    for name in ("compose", "kit"):
        (root / name).symlink_to(ROOT / name)
    (root / "build").mkdir()
    shutil.copy2(BUILD_RECORD, root / "build" / "image.json")
    return root


def _play(
    tmp_path: Path, book: str, hosts: dict[str, str | None], *args: str, env_url: str = ""
) -> Play:
    """BOOK for prod with HOSTS (name: its own REPLICA_URL, or None for the env file's)."""
    lines = ["[prod]"]
    for name, url in hosts.items():
        own = f" webapp_env_overrides='{json.dumps({'REPLICA_URL': url})}'" if url else ""
        lines.append(f"{name} ansible_host=127.0.0.1 ansible_port={ports.free_port()}{own}")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    checkout = _checkout(tmp_path / "checkout", env_url)
    env = {"ANSIBLE_TIMEOUT": "5", "WEBAPP_SECRET_KEY": secret_files.new_key()}
    return playbook.start(
        book, "-e", "env=prod", "-e", f"webapp_repo_dir={checkout}", *args,
        inventory=inventory, env=env, timeout=300,
    ).wait()  # fmt: skip


def _refused_before_any_host(play: Play) -> str:
    assert play.returncode != 0, play.output[-2000:]
    assert not play.unreachable() and not play.hosts() - {"localhost"}, play.output[-2000:]
    return play.flat()


@pytest.mark.container
def test_two_hosts_on_the_env_file_s_replica_are_refused_before_any_host(tmp_path: Path) -> None:
    url = "file:///srv/replica/webapp"
    play = _play(tmp_path, "deploy.yml", {"web1": None, "web2": None}, env_url=url)
    output = _refused_before_any_host(play)
    assert (
        f"web1 and web2 would both replicate to {url}; give each host its own REPLICA_URL in "
        "webapp_env_overrides"
    ) in output


@pytest.mark.container
@pytest.mark.parametrize("book", ["deploy.yml", "restore.yml"])
def test_two_spellings_of_one_replica_are_refused_before_any_host(
    tmp_path: Path, book: str
) -> None:
    one, other = "file:///srv/replica/web", "file:///srv/replica//web/"
    extra = ["-e", "target=web1", "-e", "from=replica"] if book == "restore.yml" else []
    play = _play(tmp_path, book, {"web1": one, "web2": None, "web3": other}, *extra)
    output = _refused_before_any_host(play)
    assert f"web1 and web3 would both replicate to {one} and {other};" in output


@pytest.mark.container
@pytest.mark.parametrize(
    ("hosts", "env_url"),
    [
        ({"web1": None}, "file:///srv/replica/webapp"),
        ({"web1": "file:///srv/replica/web1", "web2": "file:///srv/replica/web2"}, ""),
        ({"web1": None, "web2": "file:///srv/replica/web2"}, "file:///srv/replica/web1"),
    ],
)
def test_one_replicator_per_replica_passes_to_the_hosts(
    tmp_path: Path, hosts: dict[str, str | None], env_url: str
) -> None:
    play = _play(tmp_path, "deploy.yml", hosts, env_url=env_url)
    # The preflight passed: the deploy went on to survey every host, on its closed port.
    assert play.unreachable() == set(hosts), play.output[-2000:]
    assert "would both replicate" not in play.output
