"""The image `nox -s build` made: what it holds, how it runs, and how it rebuilds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import image_budget
from harness.commands import run
from harness.repo import APP_UID, ROOT
from kit import image as kit_image
from kit import revision

# What goes into the build context (see .dockerignore); the rebuild tests copy exactly this.
CONTEXT_INPUTS = ["Dockerfile", ".dockerignore", "gunicorn.conf.py", "requirements/app.txt",
                  "webapp", "wheelhouse", "debs"]  # fmt: skip
# The layers a code change may touch: COPY webapp/ and its bytecode compile.
CODE_LAYERS = 2


def inspect(reference: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(run(["docker", "image", "inspect", reference]).stdout)[0]
    return record


def in_image(image: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp"]
    command += ["--env", "DATABASE_URL=sqlite:////tmp/app.db", image, *argv]
    return run(command, check=check)


def test_build_record_matches_the_tagged_image(build_record: dict[str, Any]) -> None:
    image = inspect(build_record["image"])
    assert image["Id"] == build_record["id"]
    assert image["Size"] == build_record["size"]
    assert inspect("webapp:latest")["Id"] == build_record["id"]
    suffix = "-dirty" if build_record["dirty"] else ""
    assert build_record["image"] == (
        f"webapp:{build_record['version']}-{build_record['revision'][:7]}{suffix}"
    )
    assert inspect(build_record["base_image"])["Id"] == build_record["base_image_id"]


def test_image_carries_build_values_as_env_and_oci_labels(build_record: dict[str, Any]) -> None:
    config = inspect(build_record["image"])["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["APP_VERSION"] == build_record["version"]
    assert env["APP_REVISION"] == build_record["revision"]
    assert env["APP_BUILT_AT"] == build_record["built_at"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.revision"] == build_record["revision"]
    assert labels["org.opencontainers.image.version"] == build_record["version"]
    assert labels["org.opencontainers.image.created"] == build_record["built_at"]
    assert not [key for key in env if "SECRET" in key]


def test_image_runs_as_fixed_non_root_user_with_healthcheck(build_record: dict[str, Any]) -> None:
    config = inspect(build_record["image"])["Config"]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    assert config["Cmd"][:3] == ["gunicorn", "--config", "/app/gunicorn.conf.py"]
    identity = in_image(build_record["image"], "id").stdout
    assert identity.startswith(f"uid={APP_UID}(webapp) gid={APP_UID}(webapp)")


def test_image_has_venv_without_pip_and_the_sqlite3_cli(build_record: dict[str, Any]) -> None:
    image = build_record["image"]
    assert (
        in_image(image, "sh", "-c", "command -v python").stdout.strip() == "/opt/venv/bin/python"
    )
    assert in_image(image, "python", "-c", "import pip", check=False).returncode != 0
    assert in_image(image, "sqlite3", "-version").stdout.startswith("3.")
    head = in_image(image, "python", "-m", "webapp", "db", "head").stdout.strip()
    assert head and head != "none"


def test_image_stays_within_its_budget_over_its_base(build_record: dict[str, Any]) -> None:
    growth = build_record["size"] - build_record["base_image_size"]
    assert 0 < growth <= image_budget.MAX_GROWTH, (
        f"image is base + {growth / 1e6:.1f} MB; the budget is {image_budget.describe()}"
    )


def test_image_carries_each_budgeted_binary(build_record: dict[str, Any]) -> None:
    for name in image_budget.BINARIES_MB:
        found = in_image(build_record["image"], "sh", "-c", f"command -v {name}").stdout.strip()
        assert found == f"/opt/venv/bin/{name}"
    assert in_image(build_record["image"], "caddy", "version").stdout.startswith("v2.11.7 ")
    assert in_image(build_record["image"], "litestream", "version").stdout.strip() == "0.5.17"


def test_rebuild_with_nothing_changed_gives_the_same_image_id(
    build_record: dict[str, Any],
) -> None:
    # The kit's own build, twice from the same tree: built_at must not move, so the
    # second build runs no step and yields the same ID.
    def kit_build() -> tuple[str, dict[str, Any], str]:
        result = run([sys.executable, "-m", "kit", "build"], timeout=600)
        record = json.loads((ROOT / "build" / "image.json").read_text())
        return result.stdout.strip().splitlines()[-1], record, result.stderr

    first_id, first, _ = kit_build()
    second_id, second, log = kit_build()
    assert second_id == first_id == first["id"] == second["id"]
    assert second["built_at"] == first["built_at"]
    assert "(0 steps run," in log
    if first["source_digest"] == build_record["source_digest"]:
        # Unchanged since `nox -s build` (always so in CI): the very same image.
        assert first_id == build_record["id"]


def _copy_context(destination: Path) -> None:
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                  *CONTEXT_INPUTS]).stdout  # fmt: skip
    names = {name for name in listed.split("\0") if name}
    names |= {str(p.relative_to(ROOT)) for p in (ROOT / "wheelhouse").glob("*.whl")}
    names |= {str(p.relative_to(ROOT)) for p in (ROOT / "debs").glob("*.deb")}
    names.add("debs/SHA256SUMS")
    for name in sorted(names):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _build(context: Path, record: dict[str, Any], tag: str) -> tuple[str, str]:
    arguments = {
        "BASE_IMAGE": record["base_image"],
        "APP_VERSION": record["version"],
        "APP_REVISION": record["revision"],
        "APP_BUILT_AT": record["built_at"],
    }
    # The label `nox -s build` adds, computed the same way from this context.
    fingerprint = kit_image.proxy_fingerprint(record["base_image_id"], context)
    label = f"{kit_image.PROXY_LABEL}={fingerprint}"
    command = ["docker", "build", "--tag", tag, "--label", label]
    for name, value in arguments.items():
        command += ["--build-arg", f"{name}={value}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    output = run([*command, str(context)], env=env, timeout=600).stdout
    return inspect(tag)["Id"], output


def test_code_only_change_rebuilds_only_the_code_layers(
    build_record: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the kit reads the tree relative to the repository root
    _copy_context(tmp_path)
    tag = "webapp:test-code-change"
    try:
        same_id, _ = _build(tmp_path, build_record, tag)
        if revision.source_digest() == build_record["source_digest"]:
            # The same source in another directory is the same image: the build is a pure
            # function of the context and the build values (always checked in CI).
            assert same_id == build_record["id"]

        with (tmp_path / "webapp" / "__init__.py").open("a") as module:
            module.write("\n# a code-only change made by the rebuild test\n")
        changed_id, output = _build(tmp_path, build_record, tag)
        assert changed_id != same_id

        before = inspect(same_id)["RootFS"]["Layers"]
        after = inspect(changed_id)["RootFS"]["Layers"]
        assert len(after) == len(before)
        assert after[:-CODE_LAYERS] == before[:-CODE_LAYERS], "dependency layers were rebuilt"
        assert after[-CODE_LAYERS:] != before[-CODE_LAYERS:]
        # The builder says so too: the wheel install step came from cache.
        install_step = output.split("python3 -m venv /opt/venv", 1)[1].split("Step ", 1)[0]
        assert "Using cache" in install_step
    finally:
        run(["docker", "image", "rm", tag], check=False)
