"""The pure parts of the host-secrets drill: where a secret shows, and file modes."""

from __future__ import annotations

import base64

from drills.host_secrets import (
    EXPECTED_MODES,
    FileMode,
    distinctive_secret,
    leaks_in,
    mode_problems,
    parse_modes,
)
from harness.lab import build_facts


def test_the_secret_is_a_valid_prod_key_and_differs_each_run() -> None:
    first, second = distinctive_secret(), distinctive_secret()
    assert first != second and len(first) >= 32
    assert "change-me" not in first and "placeholder" not in first


def test_a_secret_shows_plain_and_base64_encoded() -> None:
    secret = distinctive_secret()
    assert leaks_in(f"msg: {secret}", secret)
    assert leaks_in(base64.b64encode(f"{secret}\n".encode()).decode(), secret)
    assert not leaks_in("content: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER", secret)


def test_stat_lines_parse_with_spaces_in_names() -> None:
    assert parse_modes("0 0 600 /opt/webapp/.env.prod\n10001 10001 600 /opt/a b\n") == [
        FileMode("0", "0", "600", "/opt/webapp/.env.prod"),
        FileMode("10001", "10001", "600", "/opt/a b"),
    ]


def test_wrong_owner_mode_and_missing_files_are_each_one_problem() -> None:
    modes = [
        FileMode("0", "0", "644", "/opt/webapp/.env.prod"),
        FileMode("0", "0", "600", "/opt/webapp/secrets/secret_key"),
        FileMode("0", "0", "600", "/opt/webapp/releases.json"),
    ]
    assert mode_problems(modes, EXPECTED_MODES) == [
        "/opt/webapp/.env.prod is 0:0 644, expected 0:0 600",
        "/opt/webapp/secrets/secret_key is 0:0 600, expected 10001:10001 600",
        "/opt/webapp/audit.log is missing",
    ]


def test_files_as_documented_have_no_problem() -> None:
    modes = [
        FileMode(*owner_group_mode, path) for path, owner_group_mode in EXPECTED_MODES.items()
    ]
    assert mode_problems(modes, EXPECTED_MODES) == []


def test_build_facts_come_from_the_image_environment() -> None:
    env = [
        "PATH=/bin",
        "APP_VERSION=0.1.0",
        "APP_REVISION=abc=def",
        "APP_BUILT_AT=2026-11-28T05:40:27Z",
    ]
    assert build_facts(env) == {
        "version": "0.1.0",
        "revision": "abc=def",
        "built_at": "2026-11-28T05:40:27Z",
    }
    assert build_facts(["PATH=/bin"]) == {}
