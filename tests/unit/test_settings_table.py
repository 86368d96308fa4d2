"""The settings table (webapp/settings.py) against everything that mirrors it: the compose
files, the env files, the deploy plan, the preflight's key check and the README."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kit import deploy_plan, env_file
from kit.console import KitError
from tests.sqlite_allowance import ALLOWANCE
from webapp import settings
from webapp.settings import VARIABLES, ConfigError

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = sorted((REPO / "compose").glob("compose*.yaml"))
# ${NAME}, ${NAME:-default}, ${NAME:?message}; `$$` is compose's escaped dollar.
INTERPOLATION = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Z][A-Z0-9_]*)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}"
)


# ${NAME:-${OTHER:-default}}: NAME falls back to OTHER, and the table gives NAME no default.
FALLBACK = re.compile(r"\$\{(?P<name>[A-Z][A-Z0-9_]*):-(?P<inner>\$\{[^}]*\})\}")


def _by(reader: str) -> set[str]:
    return {name for name, variable in VARIABLES.items() if reader in variable.readers}


IN_CONTAINERS = _by("app") | _by("gunicorn")  # what a container's environment may hold
FORWARDED = _by("compose") & IN_CONTAINERS  # env file -> compose -> app container
TO_PROXY = _by("compose") & _by("proxy")  # env file -> compose -> proxy container


def _strings(node: Any, *, skip: str) -> list[str]:
    """Every string in a parsed compose file, except under keys named `skip`."""
    if isinstance(node, dict):
        return [
            s for key, value in node.items() if key != skip for s in _strings(value, skip=skip)
        ]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item, skip=skip)]
    return [node] if isinstance(node, str) else []


def _interpolations() -> list[re.Match[str]]:
    # `build.args` are the image's inputs (BASE_IMAGE, APP_VERSION, ...), which `nox -s
    # build` passes itself; they are not settings of a running stack.
    found: list[re.Match[str]] = []
    for path in COMPOSE_FILES:
        for text in _strings(yaml.safe_load(path.read_text()), skip="build"):
            unnested = FALLBACK.sub(lambda match: f"${{{match['name']}:-}}{match['inner']}", text)
            found += INTERPOLATION.finditer(unnested)
    return found


def _environment(service: str) -> dict[str, str]:
    """The service's environment with every override file merged over the base."""
    merged: dict[str, str] = {}
    for path in COMPOSE_FILES:
        services = yaml.safe_load(path.read_text()).get("services", {})
        merged.update((services.get(service) or {}).get("environment") or {})
    return merged


def test_compose_reads_exactly_the_variables_the_table_gives_it() -> None:
    # COMPOSE_FILE and COMPOSE_PROJECT_NAME are Compose's own: it reads them, the files don't.
    interpolated = {name for name in _by("compose") if not name.startswith("COMPOSE_")}
    assert {match["name"] for match in _interpolations()} == interpolated


def test_compose_defaults_and_required_marks_agree_with_the_table() -> None:
    for match in _interpolations():
        variable = VARIABLES[match["name"]]
        if match["op"] == ":-":
            assert match["arg"] == variable.default, match[0]
        else:
            assert match["op"] == ":?" and "compose" in variable.required, match[0]


def test_compose_forwards_every_variable_the_table_gives_the_app_container() -> None:
    base = yaml.safe_load((REPO / "compose" / "compose.yaml").read_text())
    environment = base["services"]["app"]["environment"]
    assert "GUNICORN_MAX_REQUESTS" in FORWARDED  # the one that used to be left out
    for name in FORWARDED:
        forwarded = environment.get(name)
        assert forwarded is not None, f"compose/compose.yaml does not give {name} to app"
        match = INTERPOLATION.fullmatch(str(forwarded))
        assert match is not None and match["name"] == name, f"{name}: {forwarded!r}"


def test_compose_forwards_every_variable_the_table_gives_the_proxy_container() -> None:
    base = yaml.safe_load((REPO / "compose" / "compose.yaml").read_text())
    environment = base["services"]["proxy"]["environment"]
    assert set(environment) == TO_PROXY
    for name in TO_PROXY:
        match = INTERPOLATION.fullmatch(str(environment[name]))
        assert match is not None and match["name"] == name, f"{name}: {environment[name]!r}"


@pytest.mark.parametrize("service", ["app", "sqlite"])
def test_no_container_gets_a_variable_the_table_does_not_know(service: str) -> None:
    assert set(_environment(service)) <= IN_CONTAINERS


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_env_files_hold_only_table_variables_with_good_values(environment: str) -> None:
    values = env_file.parse(REPO / f".env.{environment}")
    assert set(values) <= set(deploy_plan.ENV_FILE_VARIABLES)
    assert [key for key, value in values.items() if deploy_plan.bad_value(key, value)] == []


CANDIDATES = ["0", "1", "2", "20", "64", "65", "256", "3600", "3601", "10000000", "10000001",
              "two", "-1", "1e3", "4.5", "30s", "dev", "prod", "staging", "info", "DEBUG",
              "LOUD", "\u0661"]  # fmt: skip


@pytest.mark.parametrize("name", sorted(FORWARDED | TO_PROXY))
def test_a_value_the_deploy_plan_passes_is_one_the_container_accepts(name: str) -> None:
    for value in CANDIDATES:
        try:
            settings.read(name, {name: value})
        except ConfigError:
            accepted = False
        else:
            accepted = True
        assert (deploy_plan.bad_value(name, value) is None) is accepted, (name, value)


def _app_accepts_in_prod(key: str, tmp_path: Path) -> bool:
    environ = {"DATABASE_URL": f"sqlite:///{tmp_path}/app.db", "APP_ENV": "prod", **ALLOWANCE}
    try:
        settings.load({**environ, "SECRET_KEY": key})
    except ConfigError:
        return False
    return True


def test_a_key_the_preflight_passes_is_a_key_the_app_accepts(tmp_path: Path) -> None:
    rule = settings.SECRET_KEY_RULE
    padding = secrets.token_urlsafe(48)
    keys = [
        *(word + padding for word in sorted(rule.placeholders)),
        *(padding[:20] + marker.upper() + padding[20:] for marker in rule.markers),
        *sorted(rule.placeholders),
        padding,
        padding[: rule.min_length],
        padding[: rule.min_length - 1],
        "",
    ]
    verdicts = {key: deploy_plan.secret_problem(key) is None for key in keys}
    assert verdicts == {key: _app_accepts_in_prod(key, tmp_path) for key in keys}
    # Refused on both sides: every marker anywhere in a key, every placeholder as the
    # whole key, and short keys. A placeholder word that is no marker may start a long key.
    plain_words = {word for word in rule.placeholders if not any(m in word for m in rule.markers)}
    assert plain_words == {"dev", "development", "secret"}
    accepted = {key for key, good in verdicts.items() if good}
    assert accepted == {padding, padding[: rule.min_length]} | {w + padding for w in plain_words}


def test_the_preflight_command_judges_the_key_from_stdin_and_never_prints_it() -> None:
    def judge(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kit.deploy_plan", "secret"], input=key + "\n", cwd=REPO,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    placeholder = "Example-" + secrets.token_urlsafe(40)
    refused = judge(placeholder)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == "error: holds a placeholder value\n"
    assert judge("").stderr == "error: is not set\n"
    good = judge(secrets.token_urlsafe(48))
    assert (good.returncode, good.stdout, good.stderr) == (0, "", "")


def test_an_env_file_line_nothing_reads_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env.prod").write_text(
        "COMPOSE_FILE=compose/compose.yaml\nCOMPOSE_PROJECT_NAME=p\nWEBAPP_PORT=8000\n"
        "APP_ENV=prod\nGUNICORN_WORKER=4\nGUNICORN_RELOAD=1\n"
    )
    with pytest.raises(KitError, match=r"GUNICORN_WORKER, GUNICORN_RELOAD is no setting"):
        deploy_plan.check("prod", ["prod"], tmp_path / "image.json")


def test_the_table_imports_only_the_standard_library() -> None:
    # The deploy plan imports the table on the controller, where only the kit's own
    # needs (the standard library) can be counted on.
    probe = (
        "import sys\n"
        "class Refuse:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.partition('.')[0]\n"
        "        if top not in sys.stdlib_module_names and top not in ('kit', 'webapp'):\n"
        "            raise ImportError(f'{name} is not in the standard library')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        "import kit.deploy_plan, webapp.settings\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _readme_rows() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("### Configuration\n", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_readme_configuration_table_lists_every_variable_as_the_table_does() -> None:
    rows = _readme_rows()
    assert set(rows) == set(VARIABLES)
    for name, variable in VARIABLES.items():
        if variable.default is not None:
            default = f"`{variable.default}`"
        else:
            default = "required" if variable.required else "—"
        readers = ", ".join(reader for reader in settings.READERS if reader in variable.readers)
        assert rows[name][:2] == [default, readers], name
