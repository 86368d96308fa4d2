"""The bad-configuration drill's judgement: what counts as a clear refusal, without Docker."""

from __future__ import annotations

import pytest

from drills import config
from kit import deploy_plan

CASE = config.Case("GUNICORN_WORKERS", "'two'", {"GUNICORN_WORKERS": "two"})
LINE = "webapp: configuration error: GUNICORN_WORKERS='two' is not a whole number"


def test_one_prompt_line_naming_the_variable_is_clear() -> None:
    assert config.judge(CASE, 2, 0.8, LINE + "\n\n") is None


@pytest.mark.parametrize(
    ("returncode", "seconds", "output", "reason"),
    [
        (None, 20, "", "still running"),
        (0, 0.5, LINE, "exited 0"),
        (2, 5.5, LINE, "took 5.5 s"),
        (1, 1, "Traceback (most recent call last):\n" + LINE, "traceback"),
        (2, 1, LINE + "\nsecond line", "2 lines"),
        (2, 1, "", "0 lines"),
        (2, 1, "webapp: configuration error: a number is wrong", "does not name"),
    ],
)
def test_unclear_refusals_say_why(returncode, seconds, output, reason) -> None:
    verdict = config.judge(CASE, returncode, seconds, output)
    assert verdict is not None and reason in verdict


def test_an_alias_may_name_the_variable() -> None:
    case = config.Case("BACKUP_KEEP", "0", service="sqlite", aliases=("--keep",))
    assert config.judge(case, 2, 1, "argument --keep: '0' is not a whole number") is None
    assert config.judge(case, 2, 1, "argument --backup-dir: bad") is not None


def test_every_variable_has_a_case_in_the_quick_run() -> None:
    cases = config.container_cases()
    everything = {case.variable for case in cases}
    assert {case.variable for case in cases if case.quick} == everything
    assert {"DATABASE_URL", "APP_ENV", "SECRET_KEY", "SECRET_KEY_FILE", "LOG_LEVEL",
            "GUNICORN_BIND", "GUNICORN_RELOAD", "BACKUP_INTERVAL"} <= everything  # fmt: skip
    assert all(name.startswith("GUNICORN_") for name in everything if "GUNICORN" in name)


def test_docker_times_keep_microseconds() -> None:
    started = config.docker_time("2026-11-28T05:00:01.123456789Z")
    finished = config.docker_time("2026-11-28T05:00:03.5Z")
    assert (finished - started).total_seconds() == pytest.approx(2.376544)


def test_a_case_changes_only_its_own_line_of_the_env_file() -> None:
    original = "# comment\nAPP_ENV=prod\nAPP_ENVIRONMENT=x\nLOG_LEVEL=INFO\n"
    case = config.DeployCase("APP_ENV", "'staging'", "APP_ENV=staging")
    edited = config.edited_env_file(original, case).splitlines()
    assert "APP_ENV=staging" in edited and "APP_ENV=prod" not in edited
    assert "APP_ENVIRONMENT=x" in edited and "LOG_LEVEL=INFO" in edited
    removed = config.edited_env_file(original, config.DeployCase("LOG_LEVEL", "missing"))
    assert "LOG_LEVEL" not in removed and "APP_ENV=prod" in removed


REFUSED = "TASK [Stop]\nfatal: [localhost]: FAILED! =>\n  msg: .env.prod: APP_ENV='x' is not valid"


def test_a_deploy_refusal_must_name_the_variable_and_spare_the_host() -> None:
    case = config.DeployCase("APP_ENV", "'x'", "APP_ENV=x")
    assert config.judge_deploy(case, 2, REFUSED) is None
    assert "succeeded" in (config.judge_deploy(case, 0, REFUSED) or "")
    reached = REFUSED + "\nfatal: [drillhost]: UNREACHABLE! => ssh refused"
    assert "contacted the host" in (config.judge_deploy(case, 2, reached) or "")
    other = config.DeployCase("LOG_LEVEL", "'x'", "LOG_LEVEL=x")
    assert "does not name LOG_LEVEL" in (config.judge_deploy(other, 2, REFUSED) or "")


def test_the_deploy_control_must_reach_the_host() -> None:
    assert config.judge_deploy(None, 4, "fatal: [drillhost]: UNREACHABLE!") is None
    assert config.judge_deploy(None, 2, REFUSED) is not None


@pytest.mark.parametrize(
    ("key", "value", "refused"),
    [
        ("APP_ENV", "prod", False),
        ("APP_ENV", "staging", True),
        ("LOG_LEVEL", "debug", False),
        ("LOG_LEVEL", "LOUD", True),
        ("GUNICORN_WORKERS", "64", False),
        ("GUNICORN_WORKERS", "65", True),
        ("GUNICORN_TIMEOUT", "30s", True),
        ("WEBAPP_PORT", "80800", True),
        ("BACKUP_KEEP", "0", True),
        ("GUNICORN_THREADS", "", False),  # compose's default applies
        ("COMPOSE_PROJECT_NAME", "anything", False),
        ("APP_MEMORY", "512M", False),
        ("APP_MEMORY", "1.5 GiB", False),
        ("APP_MEMORY", "lots", True),
        ("APP_CPUS", "0.5", False),
        ("APP_CPUS", "many", True),
        ("APP_HEALTHCHECK_INTERVAL", "1m30s", False),
        ("SQLITE_HEALTHCHECK_INTERVAL", "5", True),
        ("WEBAPP_BIND_ADDRESS", "0.0.0.0", False),
        ("WEBAPP_BIND_ADDRESS", "::1", False),
        ("WEBAPP_BIND_ADDRESS", "localhost", True),
        ("LOG_MAX_FILES", "abc", True),
    ],
)
def test_the_deploy_plan_refuses_what_the_containers_would(key, value, refused) -> None:
    assert (deploy_plan.bad_value(key, value) is not None) is refused
