"""The edge proxy in real stacks: plain HTTP in dev, a local CA's HTTPS in prod.

What is checked is what a client meets: the app's answers (security headers as the app
sets them), a 413 from the proxy above the app's body limit, slow clients cut while
normal requests are answered, one JSON access line per request carrying the request id
the app logs too, and with TLS: HTTP/2, the redirect from HTTP, HSTS, and X-Forwarded-Proto
trusted from the proxy only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness import http
from harness.commands import run
from harness.stack import Stack, wait_for
from webapp.http.body_limit import REQUEST_MAX
from webapp.ops import proxy_config

DOMAIN = "notes.test"
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Resource-Policy",
)


@pytest.fixture(scope="module")
def plain(stacks: Any) -> Stack:
    stack: Stack = stacks("dev", "proxy")
    stack.up()
    return stack


@pytest.fixture(scope="module")
def secure(stacks: Any, secret_file: Path) -> Stack:
    stack: Stack = stacks(
        "prod",
        "proxy-tls",
        WEBAPP_SECRET_KEY_FILE=str(secret_file),
        WEBAPP_DOMAIN=DOMAIN,
        WEBAPP_TLS="internal",
    )
    stack.up()
    return stack


@pytest.fixture(scope="module")
def root_cert(secure: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local CA's root, exported from the proxy's volume as an operator would."""
    path = tmp_path_factory.mktemp("ca") / "root.crt"
    pem = wait_for(
        lambda: secure.exec("proxy", "cat", proxy_config.LOCAL_ROOT_CERT, check=False),
        attempts=30,
        pause=1,
        what="the local CA's root certificate",
    )
    path.write_text(pem)
    return path


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["curl", "--silent", "--show-error", "--max-time", "15", *args], check=False)


def via_proxy(stack: Stack, method: str, path: str, payload: Any = None, **options: Any):
    return http.once(stack.http_port, method, path, payload, **{"timeout": 15, **options})


def logs(stack: Stack, service: str) -> list[dict[str, Any]]:
    out = stack.compose("logs", "--no-color", "--no-log-prefix", service).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_the_app_answers_through_the_proxy_with_its_own_security_headers(plain: Stack) -> None:
    direct = plain.request("GET", "/api/notes?limit=1")
    proxied = via_proxy(plain, "GET", "/api/notes?limit=1")
    assert proxied.status == direct.status == 200
    assert proxied.json() == direct.json()
    assert "Caddy" in proxied.headers["Via"]
    for name in SECURITY_HEADERS:
        assert proxied.headers[name] == direct.headers[name], name
    assert "Strict-Transport-Security" not in proxied.headers  # no TLS, no HSTS


def test_a_body_over_the_app_limit_is_refused_at_the_proxy(plain: Stack) -> None:
    marker = f"big-{uuid.uuid4().hex[:8]}"
    too_big = via_proxy(
        plain, "POST", "/api/notes", "x" * REQUEST_MAX, headers={"X-Request-ID": marker}
    )
    assert too_big.status == 413
    assert too_big.headers["Server"] == "Caddy"
    assert too_big.headers["Content-Type"] == "application/problem+json"
    assert too_big.json()["request_id"] == marker
    # The app never saw it: no app thread read a byte of that body.
    assert marker not in plain.compose("logs", "app").stdout
    # At the limit the body reaches the app, which judges it.
    client = http.Client(plain.http_port, 15)
    try:
        at_limit = client.send("POST", "/api/notes", b" " * REQUEST_MAX)
    finally:
        client.close()
    assert at_limit.status == 400 and at_limit.headers["Server"] != "Caddy"


def _slow_connection(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(head)
    return sock


def _closed_by_server(sock: socket.socket, drip: bytes, attempts: int) -> bool:
    """Send `drip` once a second; True once the server has closed the connection."""
    for _ in range(attempts):
        try:
            sock.sendall(drip)
            sock.settimeout(1)
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_slow_clients_are_cut_while_normal_requests_are_answered(plain: Stack) -> None:
    # More slow connections than the dev app has threads (1 worker x 4): without the
    # proxy in front, these alone would leave no thread for anyone else.
    talkers = [
        _slow_connection(plain.http_port, b"GET /api/notes HTTP/1.1\r\nHost: x\r\n")
        for _ in range(12)
    ]
    marker = f"slowbody-{uuid.uuid4().hex[:8]}"
    body = _slow_connection(
        plain.http_port,
        b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: " + marker.encode() + b"\r\nContent-Length: 1000\r\n\r\n{",
    )
    try:
        for _ in range(10):
            assert via_proxy(plain, "GET", "/healthz", timeout=5).status == 200
        # Headers must be whole within READ_HEADER_S, however steadily they drip.
        limit = proxy_config.READ_HEADER_S * 4
        assert all(_closed_by_server(sock, b"X-Slow: 1\r\n", limit) for sock in talkers)
        body.sendall(b" ")
        assert via_proxy(plain, "GET", "/healthz", timeout=5).status == 200
    finally:
        for sock in [*talkers, body]:
            sock.close()
    # The slow body, still incomplete, was never handed to the app.
    assert marker not in plain.compose("logs", "app").stdout
    assert via_proxy(plain, "GET", "/healthz", timeout=5).status == 200


def test_each_request_is_one_json_access_line_with_the_request_id(plain: Stack) -> None:
    mine = f"trace-{uuid.uuid4().hex[:8]}"
    answer = via_proxy(plain, "GET", "/api/notes?limit=1", headers={"X-Request-ID": mine})
    odd = via_proxy(plain, "GET", "/api/notes?limit=2", headers={"X-Request-ID": "no spaces"})
    assert answer.headers["X-Request-Id"] == mine  # Caddy writes header names canonically
    replaced = odd.headers["X-Request-Id"]
    assert replaced != "no spaces" and len(replaced) == 36

    def access_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in logs(plain, "proxy")
            if line.get("logger", "").startswith("http.log.access")
            and line.get("request_id") in (mine, replaced)
        ]

    found = wait_for(lambda: len(access_lines()) == 2 and access_lines(), attempts=10,
                     pause=0.5, what="the proxy's access lines")  # fmt: skip
    by_id = {line["request_id"]: line for line in found}
    assert by_id[mine]["request"]["uri"] == "/api/notes?limit=1"
    assert by_id[mine]["status"] == 200
    app_ids = {line.get("request_id") for line in logs(plain, "app")}
    assert {mine, replaced} <= app_ids  # the app logged the same ids


def test_with_a_local_ca_it_serves_http2_and_hsts_to_a_client_trusting_the_root(
    secure: Stack, root_cert: Path
) -> None:
    url = f"https://{DOMAIN}:{secure.https_port}/healthz"
    resolve = f"{DOMAIN}:{secure.https_port}:127.0.0.1"
    refused = curl("--resolve", resolve, url)
    assert refused.returncode == 60  # no trust without the exported root
    answer = curl("--cacert", str(root_cert), "--resolve", resolve, "--include",
                  "--write-out", "\n%{http_version} %{http_code}", url)  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[-1] == "2 200"
    assert "strict-transport-security: max-age=31536000" in answer.stdout.lower()


def test_http_redirects_to_https(secure: Stack) -> None:
    answer = curl("--resolve", f"{DOMAIN}:{secure.http_port}:127.0.0.1", "--include",
                  f"http://{DOMAIN}:{secure.http_port}/api/notes?limit=1")  # fmt: skip
    headers = answer.stdout.lower()
    assert answer.stdout.startswith("HTTP/1.1 308")
    assert f"location: https://{DOMAIN}:{secure.https_port}/api/notes?limit=1" in headers


def test_forwarded_proto_is_trusted_from_the_proxy_only(secure: Stack, root_cert: Path) -> None:
    payload = json.dumps({"title": "through TLS"})
    resolve = f"{DOMAIN}:{secure.https_port}:127.0.0.1"
    answer = curl("--cacert", str(root_cert), "--resolve", resolve, "--include",
                  "-H", "Content-Type: application/json", "--data", payload,
                  f"https://{DOMAIN}:{secure.https_port}/api/notes")  # fmt: skip
    location = next(
        line for line in answer.stdout.splitlines() if line.lower().startswith("location:")
    )
    assert location.split(": ", 1)[1].startswith(
        f"https://{DOMAIN}:{secure.https_port}/api/notes/"
    )
    spoofed = secure.request("POST", "/api/notes", {"title": "direct"},
                             headers={"X-Forwarded-Proto": "https"})  # fmt: skip
    assert spoofed.status == 201
    assert spoofed.headers["Location"].startswith("http://")


def _scrape(port: int) -> str:
    answer = http.once(port, "GET", "/metrics", timeout=15)
    assert answer.status == 200, answer.body[:200]
    return answer.body.decode()


def _total(scraped: str, name: str, *labels: str) -> float:
    """The sum of NAME's samples that carry every one of LABELS (`key="value"`)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scraped.splitlines()
        if line.startswith(name + "{") and all(label in line for label in labels)
    )


def test_the_proxy_s_metrics_are_on_loopback_and_the_stack_network_never_public(
    plain: Stack,
) -> None:
    assert via_proxy(plain, "GET", "/api/notes?limit=1").status == 200
    scraped = _scrape(plain.proxy_metrics_port)
    # Caddy names a route's first handler: the app's route starts with log_append.
    app = ('host="_other"', 'server="app"')
    assert _total(scraped, "caddy_http_requests_total", *app) >= 1
    assert _total(scraped, "caddy_http_request_duration_seconds_count", 'code="200"', *app) >= 1
    upstream = 'upstream="unix//run/webapp/app.sock"'
    wait_for(
        lambda: _total(_scrape(plain.proxy_metrics_port), "caddy_reverse_proxy_upstreams_healthy",
                       upstream) == 1,
        attempts=30,
        pause=1,
        what="the app slot counted healthy",
    )  # fmt: skip
    # Through the public port, /metrics is the app's own 404.
    public = via_proxy(plain, "GET", "/metrics")
    assert public.status == 404 and b"caddy_" not in public.body
    published = plain.inspect("proxy")["NetworkSettings"]["Ports"]
    assert {b["HostIp"] for b in published[f"{plain.proxy_metrics_port}/tcp"]} == {"127.0.0.1"}
    assert "2019/tcp" not in published  # the admin API stays inside the container
    status_line = plain.exec(
        "app",
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/proxy/{plain.proxy_metrics_port} && "
        "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3",
    )
    assert status_line.split()[1] == "200", status_line


def test_with_tls_no_public_port_serves_the_proxy_s_metrics_and_hosts_are_counted(
    secure: Stack, root_cert: Path
) -> None:
    resolve = f"{DOMAIN}:{secure.https_port}:127.0.0.1"
    answer = curl("--cacert", str(root_cert), "--resolve", resolve, "--include",
                  f"https://{DOMAIN}:{secure.https_port}/metrics")  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split()[1] == "404" and "caddy_" not in answer.stdout
    plain_http = curl("--include", f"http://127.0.0.1:{secure.http_port}/metrics")
    assert plain_http.stdout.startswith("HTTP/1.1 308") and "caddy_" not in plain_http.stdout
    scraped = _scrape(secure.proxy_metrics_port)
    # The host label is the request's Host: the domain, with its port unless it is 443.
    host = (f'host="{DOMAIN}:{secure.https_port}"', 'server="app"')
    assert _total(scraped, "caddy_http_requests_total", *host) >= 1


def test_the_local_ca_survives_a_redeploy(secure: Stack, root_cert: Path) -> None:
    secure.down()
    secure.up()
    again = secure.exec("proxy", "cat", proxy_config.LOCAL_ROOT_CERT)
    assert again == root_cert.read_text()
