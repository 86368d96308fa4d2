"""The kit's own decisions, checked without building: env files, wheel platforms, the
Debian mirror, the build record, and its command line's one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.commands import run
from harness.repo import ROOT
from kit import base_image, env_file, image, revision, wheelhouse
from kit.console import KitError


def kit(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return run([sys.executable, "-m", "kit", *argv], env=env, check=False, cwd=cwd)


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_committed_env_files_parse(environment: str) -> None:
    values = env_file.parse(env_file.path_for(environment))
    assert values["APP_ENV"] == environment
    assert values["COMPOSE_PROJECT_NAME"] == f"webapp-{environment}"


@pytest.mark.parametrize(
    "line", ['APP_ENV="prod"', "export APP_ENV=prod", "APP_ENV = prod", "PORT=${X}", "lower=1"]
)
def test_env_file_refuses_shell_syntax_naming_the_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".env.bad"
    path.write_text(f"# comment\nLOG_LEVEL=INFO\n{line}\n")
    with pytest.raises(KitError, match=r"\.env\.bad:3: .* is not a plain KEY=VALUE line"):
        env_file.parse(path)


def test_unknown_environment_is_refused_with_the_valid_names() -> None:
    with pytest.raises(KitError, match="unknown environment 'staging'; use one of: dev, prod"):
        env_file.path_for("staging")


def test_wheel_platforms_follow_the_base_image_glibc() -> None:
    target = wheelhouse.Target("3.11", "cpython", "x86_64", "glibc", "2.36")
    tags = target.platforms()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_37_x86_64" not in tags
    musl = wheelhouse.Target("3.12", "cpython", "x86_64", "", "")
    with pytest.raises(KitError, match="glibc"):
        musl.platforms()


def test_debian_archives_are_read_from_both_apt_source_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "deb [arch=amd64] http://one.example/debian-security bookworm-security main\n"
        "deb https://packages.example/apt cloud-sdk-bookworm main\n"
    )
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    monkeypatch.setattr(base_image, "APT_SOURCES", (listing, parts))
    # A Debian 12 host's own archive serves the Debian 13 base: no address is fixed.
    archives = base_image.debian_archives()
    assert archives == base_image.Archives(
        "http://mirror.example/debian", "http://one.example/debian-security"
    )
    sources = archives.sources("trixie")
    assert "URIs: http://mirror.example/debian\nSuites: trixie trixie-updates\n" in sources
    assert "URIs: http://one.example/debian-security\nSuites: trixie-security\n" in sources
    (parts / "debian.sources").unlink()
    with pytest.raises(KitError, match=r"no Debian archive in /etc/apt/sources\.list"):
        base_image.debian_mirror()


def test_the_wheelhouse_decides_markers_for_the_image_python_not_the_host() -> None:
    lock = (
        "alembic==1.0 \\\n    --hash=sha256:aa\n"
        "legacy-cgi==2.6.4 ; python_full_version >= '3.13' \\\n"
        "    --hash=sha256:bb \\\n    --hash=sha256:cc\n    # via webob\n"
        "tomli==2.0 ; python_version < '3.11' \\\n    --hash=sha256:dd\n"
    )
    image = wheelhouse.requirements_for(
        lock, wheelhouse.Target("3.13", "cpython", "x86_64", "glibc", "2.41")
    )
    assert "legacy-cgi==2.6.4 \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc" in image
    assert "tomli" not in image and ";" not in image and "alembic==1.0" in image
    older = wheelhouse.requirements_for(
        lock, wheelhouse.Target("3.10", "cpython", "x86_64", "glibc", "2.36")
    )
    assert "legacy-cgi" not in older and "tomli==2.0 \\\n    --hash=sha256:dd" in older


def test_build_record_is_required_with_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(KitError, match=r"missing; run `nox -s build` first"):
        image.load_record(tmp_path / "image.json")


def test_dirty_tree_reuses_built_at_while_the_image_inputs_hash_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tmp_path / "repo"
    repository.mkdir()
    monkeypatch.chdir(repository)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    (repository / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1.2.3"\n')
    (repository / "webapp").mkdir()
    (repository / "webapp" / "app.py").write_text("A = 1\n")
    run([*git, "init", "-q"], cwd=repository)
    run([*git, "add", "."], cwd=repository)
    run([*git, "commit", "-qm", "one", "--date", "2020-01-02T03:04:05Z"], cwd=repository,
        env={"GIT_COMMITTER_DATE": "2020-01-02T03:04:05Z", "PATH": "/usr/bin:/bin"})  # fmt: skip

    clean = revision.current(tmp_path / "none.json")
    assert (clean.version, clean.dirty) == ("1.2.3", False)
    assert clean.built_at == "2020-01-02T03:04:05Z"
    assert clean.tag_suffix == f"1.2.3-{clean.revision[:7]}"

    (repository / "ansible.txt").write_text("not an image input\n")
    assert revision.current(tmp_path / "none.json") == clean

    (repository / "webapp" / "app.py").write_text("A = 2\n")
    dirty = revision.current(tmp_path / "none.json")
    assert dirty.dirty and dirty.tag_suffix.endswith("-dirty")
    record = tmp_path / "image.json"
    previous = {"revision": dirty.revision, "source_digest": dirty.source_digest,
                "built_at": "2021-05-06T07:08:09Z"}  # fmt: skip
    record.write_text(json.dumps(previous))
    assert revision.current(record).built_at == "2021-05-06T07:08:09Z"
    (repository / "webapp" / "app.py").write_text("A = 3\n")
    assert revision.current(record).built_at != "2021-05-06T07:08:09Z"


def test_command_line_misuse_and_missing_record_fail_in_one_line(tmp_path: Path) -> None:
    refused = kit("up", "staging")
    assert refused.returncode == 2 and "invalid choice: 'staging'" in refused.stderr
    result = kit("up", "--no-build", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: build/image.json is missing; run `nox -s build` first"
    )
