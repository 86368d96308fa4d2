"""The edge proxy's configuration: the settings it reads, the combinations it refuses,
and the Caddy JSON it builds (timeouts, body limit, TLS, logs, request ids)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from webapp.http import body_limit, tweens
from webapp.ops import proxy_cli, proxy_config
from webapp.settings import ConfigError

REPO = Path(__file__).resolve().parents[2]
PROD = {"APP_ENV": "prod"}


def config(**environ: str) -> dict[str, Any]:
    return proxy_config.caddy_config(proxy_config.load({"APP_ENV": "dev", **environ}))


def server(found: dict[str, Any]) -> dict[str, Any]:
    app: dict[str, Any] = found["apps"]["http"]["servers"]["app"]
    return app


def handlers(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    route = server(found)["routes"][-1]
    return {handler["handler"]: handler for handler in route["handle"]}


def test_the_limits_match_the_app_s_own() -> None:
    assert proxy_config.REQUEST_MAX == body_limit.REQUEST_MAX
    assert re.compile(proxy_config.SANE_REQUEST_ID.strip("^$")).pattern == (
        tweens._SANE_REQUEST_ID.pattern
    )
    assert proxy_config.REQUEST_ID_HEADER == tweens.REQUEST_ID_HEADER


def test_no_domain_is_plain_http_for_any_host_on_the_http_port() -> None:
    found = config(WEBAPP_HTTP_PORT="8080")
    app = server(found)
    assert app["listen"] == [":8080"]
    assert app["automatic_https"] == {"disable": True}
    assert app["protocols"] == ["h1"]
    assert "match" not in app["routes"][-1]
    assert "tls" not in found["apps"]


def test_bodies_are_buffered_and_capped_at_the_app_limit() -> None:
    found = handlers(config())
    assert found["request_body"]["max_size"] == body_limit.REQUEST_MAX
    proxy = found["reverse_proxy"]
    assert proxy["request_buffers"] == body_limit.REQUEST_MAX + 1


def test_both_app_slots_are_upstreams_taken_in_and_out_by_their_readiness() -> None:
    proxy = handlers(config(WEBAPP_SOCKET_DIR="/run/sockets"))["reverse_proxy"]
    assert proxy["upstreams"] == [
        {"dial": "unix//run/sockets/app.sock"},
        {"dial": "unix//run/sockets/app_next.sock"},
    ]
    # The live slot first: the stand-in only takes requests while `app` cannot.
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "first"}
    active = proxy["health_checks"]["active"]
    assert active["uri"] == "/readyz"
    assert (active["passes"], active["fails"], active["expect_status"]) == (1, 1, 200)
    # A drain must take effect well before the release stops the slot.
    assert 0 < active["interval"] <= proxy_config.SECOND


def test_upstream_keepalive_is_below_gunicorn_s() -> None:
    conf = (REPO / "gunicorn.conf.py").read_text()
    keepalive = int(re.search(r"^keepalive = (\d+)$", conf, re.MULTILINE)[1])  # type: ignore[index]
    idle = handlers(config())["reverse_proxy"]["transport"]["keep_alive"]["idle_timeout"]
    assert 0 < idle < keepalive * proxy_config.SECOND


def test_slow_clients_meet_every_server_timeout_and_minimum_rate() -> None:
    app = server(config())
    for key in ("read_header_timeout", "read_timeout", "read_idle_timeout", "write_timeout",
                "write_idle_timeout", "idle_timeout"):  # fmt: skip
        assert 0 < app[key] <= 60 * proxy_config.SECOND, key
    assert app["read_header_timeout"] < app["read_timeout"]
    assert app["read_min_rate"] > 0 and app["write_min_rate"] > 0


def test_a_sane_client_request_id_passes_and_any_other_is_replaced() -> None:
    first = server(config())["routes"][0]
    (matcher,) = first["match"]
    pattern = matcher["not"][0]["header_regexp"]["X-Request-ID"]["pattern"]
    assert re.fullmatch(pattern, "abc-123.x:y") and not re.fullmatch(pattern, "a b")
    assert first["handle"][0]["request"]["set"] == {"X-Request-ID": ["{http.request.uuid}"]}
    assert handlers(config())["log_append"]["key"] == "request_id"


def test_access_log_is_json_on_stdout_and_the_rest_on_stderr() -> None:
    logs = config()["logging"]["logs"]
    assert logs["access"]["writer"] == {"output": "stdout"}
    assert logs["access"]["encoder"] == {"format": "json"}
    assert logs["default"]["writer"] == {"output": "stderr"}
    assert server(config())["logs"] == {"default_logger_name": "access"}


def test_internal_tls_is_http2_for_the_domain_with_a_local_ca() -> None:
    found = config(WEBAPP_DOMAIN="Notes.Test", WEBAPP_TLS="internal", WEBAPP_HTTPS_PORT="8443")
    app = server(found)
    assert app["listen"] == [":8443"] and app["protocols"] == ["h1", "h2"]
    assert app["automatic_https"] == {"disable_redirects": True}
    redirect = found["apps"]["http"]["servers"]["redirect"]
    assert redirect["listen"] == [":80"]
    (route,) = redirect["routes"]
    location = route["handle"][0]["headers"]["Location"]
    assert location == ["https://{http.request.host}:8443{http.request.uri}"]
    assert app["routes"][-1]["match"] == [{"host": ["notes.test"]}]
    (policy,) = found["apps"]["tls"]["automation"]["policies"]
    assert policy == {"subjects": ["notes.test"], "issuers": [{"module": "internal"}]}
    assert found["storage"]["root"] == proxy_config.DATA_DIR
    assert "headers" not in handlers(found)  # HSTS is for prod only


def test_prod_with_tls_sends_hsts() -> None:
    found = handlers(config(**PROD, WEBAPP_DOMAIN="notes.example.com"))
    assert found["headers"]["response"]["set"] == {
        "Strict-Transport-Security": ["max-age=31536000"]
    }


def test_a_domain_alone_means_acme_with_the_chosen_ca_and_contact() -> None:
    found = config(
        WEBAPP_DOMAIN="notes.example.com",
        WEBAPP_ACME_EMAIL="ops@example.com",
        WEBAPP_ACME_CA="https://pebble:14000/dir",
        WEBAPP_ACME_CA_ROOT="/certs/pebble.pem",
    )
    (policy,) = found["apps"]["tls"]["automation"]["policies"]
    assert policy["issuers"] == [
        {
            "module": "acme",
            "ca": "https://pebble:14000/dir",
            "email": "ops@example.com",
            "trusted_roots_pem_files": ["/certs/pebble.pem"],
        }
    ]
    assert config(WEBAPP_DOMAIN="a.example")["apps"]["tls"]["automation"]["policies"][0][
        "issuers"
    ] == [{"module": "acme"}]


def test_the_redirect_names_no_port_for_443() -> None:
    found = config(WEBAPP_DOMAIN="a.example")["apps"]["http"]["servers"]["redirect"]
    location = found["routes"][0]["handle"][0]["headers"]["Location"]
    assert location == ["https://{http.request.host}{http.request.uri}"]


def test_deploy_checks_go_through_the_proxy_unless_it_only_redirects() -> None:
    from kit.deploy_plan import health_port

    plain = {"WEBAPP_PORT": "8000", "WEBAPP_HTTP_PORT": "8080"}
    assert health_port(plain) == "8080"
    assert health_port({"WEBAPP_PORT": "8000", "WEBAPP_HTTP_PORT": ""}) == "80"
    assert health_port({**plain, "WEBAPP_DOMAIN": "a.example"}) == "8000"
    assert health_port({**plain, "WEBAPP_DOMAIN": "a.example", "WEBAPP_TLS": "off"}) == "8080"


def test_a_domain_with_tls_off_is_plain_http() -> None:
    assert "tls" not in config(WEBAPP_DOMAIN="notes.example.com", WEBAPP_TLS="off")["apps"]


@pytest.mark.parametrize("domain", ["", "a.example"])
def test_caddy_s_metrics_have_a_server_of_their_own_and_no_public_route(domain: str) -> None:
    found = config(
        WEBAPP_DOMAIN=domain,
        WEBAPP_TLS="internal" if domain else "",
        WEBAPP_PROXY_METRICS_PORT="9300",
    )
    http = found["apps"]["http"]
    assert http["metrics"] == {"per_host": True}
    metrics = http["servers"]["metrics"]
    assert metrics["listen"] == [":9300"]
    assert metrics["automatic_https"] == {"disable": True}
    first, rest = metrics["routes"]
    assert first["match"] == [{"path": ["/metrics"]}]
    assert first["handle"] == [{"handler": "metrics"}]
    assert rest["handle"] == [{"handler": "static_response", "status_code": 404}]
    assert "logs" not in metrics
    public = [s for name, s in http["servers"].items() if name != "metrics"]
    assert public and all(":9300" not in s["listen"] for s in public)
    assert "metrics" not in json.dumps([s["routes"] for s in public])
    # The admin API, which serves /metrics too, stays inside the container.
    assert found["admin"]["listen"] == "localhost:2019"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"WEBAPP_TLS": "acme"}, r"^WEBAPP_TLS=acme needs a domain to certify; set WEBAPP_DOMAIN"),
        ({"WEBAPP_TLS": "internal"}, r"^WEBAPP_TLS=internal needs a domain"),
        (
            {"WEBAPP_TLS": "letsencrypt"},
            r"^WEBAPP_TLS='letsencrypt' is not valid; set it to one of",
        ),
        (
            {"WEBAPP_ACME_EMAIL": "ops@example.com"},
            r"^WEBAPP_ACME_EMAIL is set but WEBAPP_TLS is off",
        ),
        (
            {
                "WEBAPP_DOMAIN": "a.example",
                "WEBAPP_TLS": "internal",
                "WEBAPP_ACME_CA": "https://x/d",
            },
            r"^WEBAPP_ACME_CA is set but WEBAPP_TLS is internal",
        ),
        (
            {"WEBAPP_HTTP_PORT": "0"},
            r"^WEBAPP_HTTP_PORT='0' is not valid; set it to a whole number",
        ),
        ({"WEBAPP_HTTPS_PORT": "65536"}, r"^WEBAPP_HTTPS_PORT='65536' is not valid"),
        (
            {
                "WEBAPP_DOMAIN": "a.example",
                "WEBAPP_HTTP_PORT": "8443",
                "WEBAPP_HTTPS_PORT": "8443",
            },
            r"^WEBAPP_HTTP_PORT and WEBAPP_HTTPS_PORT are both 8443; give each its own port$",
        ),
        (
            {"WEBAPP_DOMAIN": "not a name"},
            r"^WEBAPP_DOMAIN='not a name' is not valid; set it to a DNS",
        ),
        ({"WEBAPP_DOMAIN": "a.example", "WEBAPP_ACME_CA": "http://x/d"}, r"^WEBAPP_ACME_CA='http"),
        ({"WEBAPP_SOCKET_DIR": "run/x"}, r"^WEBAPP_SOCKET_DIR='run/x' is not valid"),
        (
            {"WEBAPP_HTTP_PORT": "9182"},
            r"^WEBAPP_PROXY_METRICS_PORT=9182 is WEBAPP_HTTP_PORT too; give the metrics a port",
        ),
        (
            {"WEBAPP_HTTPS_PORT": "8443", "WEBAPP_PROXY_METRICS_PORT": "8443"},
            r"^WEBAPP_PROXY_METRICS_PORT=8443 is WEBAPP_HTTPS_PORT too",
        ),
        (
            {"WEBAPP_PROXY_METRICS_PORT": "0"},
            r"^WEBAPP_PROXY_METRICS_PORT='0' is not valid; set it to a whole number",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_problem(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        proxy_config.load({"APP_ENV": "dev", **environ})
    assert "\n" not in str(caught.value)


def test_an_empty_setting_means_its_empty_default() -> None:
    found = proxy_config.load({"APP_ENV": "dev", "WEBAPP_DOMAIN": "", "WEBAPP_TLS": " "})
    assert (found.domain, found.tls) == ("", "off")


def test_describe_says_what_is_served() -> None:
    plain = proxy_config.load({"APP_ENV": "dev"})
    assert proxy_config.describe(plain) == "plain HTTP on :80 for any host"
    secure = proxy_config.load({"APP_ENV": "dev", "WEBAPP_DOMAIN": "a.example"})
    assert proxy_config.describe(secure).startswith("https://a.example:443 (TLS: acme, HTTP/2)")


def test_cli_config_prints_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_cli.main(["config"], {"APP_ENV": "dev", "WEBAPP_HTTP_PORT": "8080"}) == 0
    printed = json.loads(capsys.readouterr().out)
    assert server(printed)["listen"] == [":8080"]


def test_cli_refuses_a_bad_setting_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_cli.main(["run"], {"APP_ENV": "dev", "WEBAPP_TLS": "acme"}) == 2
    err = capsys.readouterr().err
    assert err.startswith("webapp: configuration error: WEBAPP_TLS=acme needs a domain")
    assert err.count("\n") == 1


def test_cli_run_without_caddy_says_so(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert proxy_cli.main(["run", "--config-dir", str(tmp_path)], {"APP_ENV": "dev"}) == 1
    assert "caddy is not on PATH" in capsys.readouterr().err


def test_cli_run_writes_the_config_and_execs_caddy(tmp_path: Path) -> None:
    # A stand-in caddy on PATH that prints what it was given: the exec is real.
    fake = tmp_path / "bin" / "caddy"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@"; echo "HOME=$HOME"\n')
    fake.chmod(0o755)
    result = subprocess.run(
        [sys.executable, "-m", "webapp", "proxy", "run", "--config-dir", str(tmp_path)],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin", "APP_ENV": "dev", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"run --config {tmp_path}/caddy.json",
        f"HOME={tmp_path}",
    ]
    assert json.loads((tmp_path / "caddy.json").read_text())["admin"]["listen"] == "localhost:2019"
    assert '"message": "plain HTTP on :80 for any host"' in result.stderr


def test_cli_run_into_an_unwritable_directory_says_so(capsys, monkeypatch, tmp_path: Path) -> None:
    fake = tmp_path / "caddy"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    missing = tmp_path / "absent"
    assert proxy_cli.main(["run", "--config-dir", str(missing)], {"APP_ENV": "dev"}) == 1
    assert "give --config-dir a writable directory" in capsys.readouterr().err


def test_cli_usage_errors_are_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webapp", "proxy", "serve"], capture_output=True, text=True,
        timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("webapp: python -m webapp proxy: argument")
    assert result.stderr.count("\n") == 1


def test_nox_up_prints_the_proxy_s_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from kit import stack

    monkeypatch.chdir(REPO)
    for name in ("WEBAPP_PUBLIC_ADDRESS", "WEBAPP_HTTP_PORT", "WEBAPP_DOMAIN", "WEBAPP_TLS"):
        monkeypatch.delenv(name, raising=False)
    assert stack.url("dev") == "http://127.0.0.1:8080/"
    assert stack.url("prod") == "http://127.0.0.1:80/"
    tls = {"WEBAPP_DOMAIN": "notes.example.com"}
    assert stack.url("prod", tls) == "https://notes.example.com:443/"
    assert stack.url("prod", {**tls, "WEBAPP_TLS": "off"}) == "http://127.0.0.1:80/"
