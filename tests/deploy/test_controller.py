"""The controller-side halves of the deploy, without any host: the plan's checks and the
choice of layers to ship."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


@pytest.mark.container
def test_a_record_of_an_image_not_on_the_controller_is_refused(project: Path) -> None:
    record = project / "image.json"
    record.write_text(json.dumps({"image": "webapp:not-built-here", "id": "sha256:0"}))
    with pytest.raises(KitError, match=r"webapp:not-built-here .* run `nox -s build` again"):
        deploy_plan.check("prod", ["prod"], record)
