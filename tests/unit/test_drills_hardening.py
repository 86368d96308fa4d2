"""The hardening drill's judgement of headers, processes and container settings."""

from __future__ import annotations

from drills import hardening
from webapp.http.tweens import SECURITY_HEADERS

ROOT_STATUS = "Name:\tpython\nUid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\nNoNewPrivs:\t0\n"
APP_STATUS = "Uid:\t10001\t10001\t10001\t10001\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n"


def test_the_apps_own_headers_pass() -> None:
    assert hardening.header_problems(dict(SECURITY_HEADERS)) == []


def test_missing_or_loose_headers_are_named() -> None:
    problems = hardening.header_problems(
        {
            "content-security-policy": "script-src 'self' 'unsafe-inline'",
            "X-Content-Type-Options": "sniff",
        }
    )
    text = " | ".join(problems)
    assert "X-Content-Type-Options" in text and "Referrer-Policy" in text
    assert "CSP lacks default-src" in text and "CSP lacks frame-ancestors" in text
    assert "CSP allows 'unsafe-inline'" in text
    assert hardening.header_problems({}) [-1] == "no Content-Security-Policy header"  # fmt: skip


def test_framing_needs_frame_ancestors_none_or_x_frame_options() -> None:
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors https://a.test"
    del headers["X-Frame-Options"]
    assert any("framing" in problem for problem in hardening.header_problems(headers))


def test_a_non_root_process_without_capabilities_passes() -> None:
    assert hardening.process_problems("app", APP_STATUS, "10001\n") == []


def test_root_with_capabilities_fails_on_every_count() -> None:
    problems = hardening.process_problems("app", ROOT_STATUS, "0")
    assert len(problems) == 4
    assert any("CapEff '00000000a80425fb'" in problem for problem in problems)


def test_container_settings_are_judged_from_docker_inspect() -> None:
    good = {
        "Config": {"User": "10001:10001"},
        "HostConfig": {
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "CapAdd": None,
            "SecurityOpt": ["no-new-privileges:true"],
            "Privileged": False,
        },
    }
    assert hardening.config_problems("app", good) == []
    loose = {
        "Config": {"User": ""},
        "HostConfig": {"ReadonlyRootfs": False, "CapDrop": None, "SecurityOpt": None},
    }
    assert len(hardening.config_problems("app", loose)) == 4
