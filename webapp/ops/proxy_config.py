"""Caddy's JSON configuration for the edge proxy, built from the settings table.

The proxy is the stack's only public door: it terminates TLS, buffers request bodies and
cuts slow clients, so that an app thread is only ever busy with a whole request. It
forwards to Gunicorn over unix sockets on a volume the services share, so no Docker DNS
is involved: one socket per app slot (webapp/ops/slots.py), and its own health checks
decide which slots get requests, so a release switches slots without reloading the proxy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webapp import settings
from webapp.ops import slots

# The app refuses bodies above this (webapp.http.body_limit, which imports WebOb; the
# number is kept in step by tests/unit/test_proxy_config.py).
REQUEST_MAX = 1024 * 1024
# What webapp.http.tweens accepts as a client's request id; any other is replaced here,
# so the proxy's access log and the app's logs name the same id.
SANE_REQUEST_ID = r"^[A-Za-z0-9._:-]{1,64}$"
REQUEST_ID_HEADER = "X-Request-ID"
# Certificates, ACME accounts and the local CA: the proxy_data volume, mounted there.
DATA_DIR = "/data/caddy"
LOCAL_ROOT_CERT = f"{DATA_DIR}/pki/authorities/local/root.crt"
ADMIN_ADDRESS = "localhost:2019"
SECOND = 1_000_000_000  # Caddy's JSON durations are nanoseconds
# Against slow clients: a header must arrive whole within READ_HEADER_S, a body within
# READ_BODY_S, and neither may stall for IDLE_READ_S or fall below MIN_RATE bytes/s on
# average; a response may take WRITE_S and may not stall for IDLE_WRITE_S.
READ_HEADER_S = 5
READ_BODY_S = 30
IDLE_READ_S = 5
WRITE_S = 60
IDLE_WRITE_S = 10
MIN_RATE = 1024
# How long an idle client connection is kept open for its next request.
CLIENT_IDLE_S = 60
MAX_HEADER_BYTES = 32 * 1024
# Below Gunicorn's keepalive (5 s, gunicorn.conf.py): Caddy must never pick a pooled
# connection that Gunicorn is about to close, or a POST sent on it would fail with 502.
UPSTREAM_IDLE_S = 2
# A failed dial (the app restarting) is retried for this long before the client gets 502.
UPSTREAM_TRY_S = 5
UPSTREAM_TRY_INTERVAL_MS = 250
# Each slot's /readyz, asked this often: a slot enters rotation at its first pass and
# leaves it at its first failure, so a drain takes effect within HEALTH_INTERVAL_MS (the
# release waits that long, and for the slot's last request, before stopping it).
HEALTH_PATH = "/readyz"
HEALTH_INTERVAL_MS = 500
HEALTH_TIMEOUT_S = 2
HSTS = "max-age=31536000"
# Loggers that speak at every healthcheck (the container's asks the admin API; the proxy's
# own ask each slot, and a stopped slot fails every time): only their warnings are news.
ROUTINE_LOGGERS = ("admin.api", "http.handlers.reverse_proxy.health_checker.active")
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class ProxySettings:
    app_env: str
    domain: str
    tls: str  # "acme", "internal" or "off", resolved from the settings' empty default
    acme_email: str
    acme_ca: str
    acme_ca_root: str
    http_port: int
    https_port: int
    metrics_port: int
    upstreams: tuple[str, ...]  # unix socket paths


def _value(name: str, environ: Mapping[str, str]) -> str:
    value = settings.read(name, environ)
    assert value is not None  # every proxy variable has a default
    return value


def load(environ: Mapping[str, str]) -> ProxySettings:
    """The proxy's settings, or ConfigError naming the variable or combination at fault."""
    domain = _value("WEBAPP_DOMAIN", environ).lower()
    tls = _value("WEBAPP_TLS", environ) or ("acme" if domain else "off")
    found = ProxySettings(
        app_env=settings.app_env(environ),
        domain=domain,
        tls=tls,
        acme_email=_value("WEBAPP_ACME_EMAIL", environ),
        acme_ca=_value("WEBAPP_ACME_CA", environ),
        acme_ca_root=_value("WEBAPP_ACME_CA_ROOT", environ),
        http_port=int(_value("WEBAPP_HTTP_PORT", environ)),
        https_port=int(_value("WEBAPP_HTTPS_PORT", environ)),
        metrics_port=int(_value("WEBAPP_PROXY_METRICS_PORT", environ)),
        upstreams=tuple(
            slots.socket_path(_value("WEBAPP_SOCKET_DIR", environ), slot) for slot in slots.SLOTS
        ),
    )
    _check_combination(found)
    return found


def _check_combination(found: ProxySettings) -> None:
    if found.tls != "off" and not found.domain:
        raise settings.ConfigError(
            f"WEBAPP_TLS={found.tls} needs a domain to certify; set WEBAPP_DOMAIN, "
            "or set WEBAPP_TLS=off for plain HTTP"
        )
    if found.tls != "acme":
        for name, value in (
            ("WEBAPP_ACME_EMAIL", found.acme_email),
            ("WEBAPP_ACME_CA", found.acme_ca),
            ("WEBAPP_ACME_CA_ROOT", found.acme_ca_root),
        ):
            if value:
                raise settings.ConfigError(
                    f"{name} is set but WEBAPP_TLS is {found.tls}; unset it or set WEBAPP_TLS=acme"
                )
    if found.tls != "off" and found.http_port == found.https_port:
        raise settings.ConfigError(
            f"WEBAPP_HTTP_PORT and WEBAPP_HTTPS_PORT are both {found.http_port}; "
            "give each its own port"
        )
    for name, port in (
        ("WEBAPP_HTTP_PORT", found.http_port),
        ("WEBAPP_HTTPS_PORT", found.https_port),
    ):
        # The public ports must never answer /metrics.
        if found.metrics_port == port:
            raise settings.ConfigError(
                f"WEBAPP_PROXY_METRICS_PORT={port} is {name} too; give the metrics a port "
                "of their own"
            )


def _request_id_route() -> dict[str, Any]:
    # A client's sane id is passed on (a caller can follow its request through); a missing
    # or odd one is replaced by a fresh UUID before anything logs or forwards the request.
    return {
        "match": [{"not": [{"header_regexp": {REQUEST_ID_HEADER: {"pattern": SANE_REQUEST_ID}}}]}],
        "handle": [
            {
                "handler": "headers",
                "request": {"set": {REQUEST_ID_HEADER: ["{http.request.uuid}"]}},
            }
        ],
    }


def _app_route(found: ProxySettings, *, secure: bool) -> dict[str, Any]:
    handlers: list[dict[str, Any]] = [
        {
            "handler": "log_append",
            "key": "request_id",
            "value": "{http.request.header.X-Request-ID}",
        },
    ]
    if secure and found.app_env == "prod":
        handlers.append(
            {"handler": "headers", "response": {"set": {"Strict-Transport-Security": [HSTS]}}}
        )
    handlers += [
        # A chunked body can only be counted as it comes: cut it at the limit.
        {"handler": "request_body", "max_size": REQUEST_MAX},
        {
            "handler": "reverse_proxy",
            "upstreams": [{"dial": f"unix/{path}"} for path in found.upstreams],
            # The whole body is read from the client before an app thread is taken; one
            # byte more than the limit, so that a body over it fails here, with 413.
            "request_buffers": REQUEST_MAX + 1,
            "load_balancing": {
                # `app` whenever it is available, `app_next` only while it is not, so a
                # switch moves all traffic at once.
                "selection_policy": {"policy": "first"},
                "try_duration": UPSTREAM_TRY_S * SECOND,
                "try_interval": UPSTREAM_TRY_INTERVAL_MS * SECOND // 1000,
            },
            "health_checks": {
                "active": {
                    "uri": HEALTH_PATH,
                    "interval": HEALTH_INTERVAL_MS * SECOND // 1000,
                    "timeout": HEALTH_TIMEOUT_S * SECOND,
                    "passes": 1,
                    "fails": 1,
                    "expect_status": 200,
                    # Caddy sends every unix-socket check to the same URL host, so one
                    # pooled connection would carry one slot's check to the other slot's
                    # socket, and a draining or stopped slot's 503 would take the live one
                    # out. A connection per check reaches the socket it was dialled for.
                    "headers": {"Connection": ["close"]},
                }
            },
            "transport": {
                "protocol": "http",
                "keep_alive": {"idle_timeout": UPSTREAM_IDLE_S * SECOND},
            },
        },
    ]
    route: dict[str, Any] = {"handle": handlers, "terminal": True}
    if secure:
        route["match"] = [{"host": [found.domain]}]
    return route


def _too_large_route() -> dict[str, Any]:
    # A declared length above the app's limit is refused before a byte of the body is
    # read, and before an app thread is taken, as the app itself would answer it.
    declared = "{http.request.header.Content-Length}"
    over = f"{declared}.matches('^[0-9]{{1,18}}$') && int({declared}) > {REQUEST_MAX}"
    return {
        "match": [{"expression": over}],
        "handle": [
            {
                "handler": "static_response",
                "status_code": 413,
                "headers": {
                    "Content-Type": ["application/problem+json"],
                    "Connection": ["close"],
                },
                "body": json.dumps(
                    {
                        "type": "about:blank",
                        "title": "Content Too Large",
                        "status": 413,
                        "detail": f"request body is larger than {REQUEST_MAX} bytes; send less",
                        "request_id": "{http.request.header.X-Request-ID}",
                    }
                ),
                "close": True,
            }
        ],
        "terminal": True,
    }


def _server(found: ProxySettings, *, secure: bool) -> dict[str, Any]:
    port = found.https_port if secure else found.http_port
    server: dict[str, Any] = {
        "listen": [f":{port}"],
        "routes": [_request_id_route(), _too_large_route(), _app_route(found, secure=secure)],
        "read_header_timeout": READ_HEADER_S * SECOND,
        "read_timeout": READ_BODY_S * SECOND,
        "read_idle_timeout": IDLE_READ_S * SECOND,
        "read_min_rate": MIN_RATE,
        "write_timeout": WRITE_S * SECOND,
        "write_idle_timeout": IDLE_WRITE_S * SECOND,
        "write_min_rate": MIN_RATE,
        "idle_timeout": CLIENT_IDLE_S * SECOND,
        "max_header_bytes": MAX_HEADER_BYTES,
        # HTTP/3 would need a UDP port that the stack does not publish.
        "protocols": ["h1", "h2"] if secure else ["h1"],
        "logs": {"default_logger_name": "access"},
    }
    if not secure:
        server["automatic_https"] = {"disable": True}
    else:
        # Caddy's own redirect names no port when it listens on https_port, which is
        # right on 443 only: the redirect server below names it whenever it is not 443.
        server["automatic_https"] = {"disable_redirects": True}
    return server


def _redirect_server(found: ProxySettings) -> dict[str, Any]:
    """Plain HTTP with TLS on: ACME's HTTP challenges (Caddy answers them on any HTTP
    server), and a redirect of everything else to the same URL over HTTPS."""
    port = "" if found.https_port == 443 else f":{found.https_port}"
    return {
        "listen": [f":{found.http_port}"],
        "routes": [
            {
                "handle": [
                    {
                        "handler": "static_response",
                        "status_code": 308,
                        "headers": {
                            "Location": [
                                f"https://{{http.request.host}}{port}{{http.request.uri}}"
                            ],
                            "Connection": ["close"],
                        },
                    }
                ]
            }
        ],
        "read_header_timeout": READ_HEADER_S * SECOND,
        "read_timeout": READ_BODY_S * SECOND,
        "idle_timeout": CLIENT_IDLE_S * SECOND,
        "max_header_bytes": MAX_HEADER_BYTES,
        "protocols": ["h1"],
        "logs": {"default_logger_name": "access"},
    }


def _issuer(found: ProxySettings) -> dict[str, Any]:
    if found.tls == "internal":
        return {"module": "internal"}
    issuer: dict[str, Any] = {"module": "acme"}
    if found.acme_ca:
        issuer["ca"] = found.acme_ca
    if found.acme_email:
        issuer["email"] = found.acme_email
    if found.acme_ca_root:
        issuer["trusted_roots_pem_files"] = [found.acme_ca_root]
    return issuer


def _metrics_server(found: ProxySettings) -> dict[str, Any]:
    """Caddy's own metrics on a port of their own, which compose publishes on the host's
    127.0.0.1 only: the public servers have no metrics route at all."""
    return {
        "listen": [f":{found.metrics_port}"],
        "routes": [
            {
                "match": [{"path": [METRICS_PATH]}],
                "handle": [{"handler": "metrics"}],
                "terminal": True,
            },
            {"handle": [{"handler": "static_response", "status_code": 404}]},
        ],
        "read_header_timeout": READ_HEADER_S * SECOND,
        "read_timeout": READ_BODY_S * SECOND,
        "idle_timeout": CLIENT_IDLE_S * SECOND,
        "protocols": ["h1"],
        "automatic_https": {"disable": True},
        # No access log: a scrape every few seconds would drown the requests that matter.
    }


def caddy_config(found: ProxySettings) -> dict[str, Any]:
    """The whole configuration `caddy run --config` takes."""
    secure = found.tls != "off"
    http: dict[str, Any] = {
        "http_port": found.http_port,
        "https_port": found.https_port,
        "servers": {"app": _server(found, secure=secure), "metrics": _metrics_server(found)},
        # Requests by server, handler, host (the domain; any other name is `_other`, so a
        # client cannot grow the label set), code and method; upstream health.
        "metrics": {"per_host": True},
    }
    if secure:
        http["servers"]["redirect"] = _redirect_server(found)
    config: dict[str, Any] = {
        # The admin API stays inside the container (the healthcheck asks it); the config
        # comes from the settings at every start, never from a saved copy.
        "admin": {"listen": ADMIN_ADDRESS, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": DATA_DIR},
        "logging": {
            "logs": {
                "default": {
                    "writer": {"output": "stderr"},
                    "encoder": {"format": "json"},
                    "exclude": ["http.log.access", *ROUTINE_LOGGERS],
                },
                "routine": {
                    "writer": {"output": "stderr"},
                    "encoder": {"format": "json"},
                    "level": "WARN",
                    "include": list(ROUTINE_LOGGERS),
                },
                "access": {
                    "writer": {"output": "stdout"},
                    "encoder": {"format": "json"},
                    "include": ["http.log.access"],
                },
            }
        },
        "apps": {"http": http},
    }
    if secure:
        config["apps"]["tls"] = {
            "automation": {"policies": [{"subjects": [found.domain], "issuers": [_issuer(found)]}]}
        }
        # The local CA's root stays on the volume for operators to export; the container
        # has no trust store to install it in.
        config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    return config


def describe(found: ProxySettings) -> str:
    """One line for the log: what the proxy serves, and how."""
    if found.tls == "off":
        return f"plain HTTP on :{found.http_port} for any host"
    return (
        f"https://{found.domain}:{found.https_port} (TLS: {found.tls}, HTTP/2), "
        f"HTTP on :{found.http_port} redirects"
    )
