"""A real ACME flow: the prod stack's proxy gets its certificate from Debian's `pebble`
(Let's Encrypt's test CA), run beside it on the stack's own network.

Pebble is built offline from the project's Debian 13 base with apt (over HTTP), its own
HTTPS certificate is made here with openssl, and it validates the HTTP-01 challenge by
connecting to the domain's name, which only the proxy answers on that network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.commands import run
from harness.stack import Stack, wait_for

DOMAIN = "notes.acme.test"
PEBBLE_IMAGE = "localhost/webapp-test-pebble:trixie"
CONTAINER_CERTS = "/etc/pebble-certs"


def pebble_image(base_image: str, workdir: Path) -> str:
    (workdir / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends pebble "
        "&& rm -rf /var/lib/apt/lists/*\n"
        'ENTRYPOINT ["pebble"]\n'
    )
    run(["docker", "build", "-q", "-t", PEBBLE_IMAGE, str(workdir)], timeout=600)
    return PEBBLE_IMAGE


def certificates(directory: Path) -> None:
    """A throw-away CA and pebble's own server certificate, for the name `pebble`."""

    def openssl(*args: str) -> None:
        run(["openssl", *args], cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=test root", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=pebble",
            "-keyout", "pebble.key", "-out", "pebble.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:pebble\n")
    openssl("x509", "-req", "-in", "pebble.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "pebble.pem")  # fmt: skip
    for path in directory.iterdir():
        path.chmod(0o644)  # read by pebble's and the proxy's unprivileged users
    directory.chmod(0o755)


def override(directory: Path, image: str, http_port: int, https_port: int) -> Path:
    (directory / "pebble.json").write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": "0.0.0.0:14000",
                    "managementListenAddress": "0.0.0.0:15000",
                    "certificate": f"{CONTAINER_CERTS}/pebble.pem",
                    "privateKey": f"{CONTAINER_CERTS}/pebble.key",
                    # Where it validates challenges: the proxy's own ports.
                    "httpPort": http_port,
                    "tlsPort": https_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    (directory / "pebble.json").chmod(0o644)
    services: dict[str, Any] = {
        "pebble": {
            "image": image,
            "pull_policy": "never",
            "command": ["-config", f"{CONTAINER_CERTS}/pebble.json"],
            # No random nonce rejections and no sleeps: the flow itself is what is tested.
            "environment": {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
            "volumes": [f"{directory}:{CONTAINER_CERTS}:ro"],
        },
        "proxy": {
            "environment": {"WEBAPP_ACME_CA_ROOT": f"{CONTAINER_CERTS}/ca.pem"},
            "volumes": [f"{directory}:{CONTAINER_CERTS}:ro"],
            "networks": {"default": {"aliases": [DOMAIN]}},
            "depends_on": {"pebble": {"condition": "service_started"}},
        },
    }
    path = directory / "compose.acme.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


@pytest.fixture(scope="module")
def acme_stack(
    stacks: Any, secret_file: Path, build_record: dict[str, Any], tmp_path_factory: Any
) -> Stack:
    work = tmp_path_factory.mktemp("pebble")
    image = pebble_image(build_record["base_image"], work)
    certs = tmp_path_factory.mktemp("pebble-certs")
    certificates(certs)
    stack: Stack = stacks(
        "prod",
        "acme",
        WEBAPP_SECRET_KEY_FILE=str(secret_file),
        WEBAPP_DOMAIN=DOMAIN,
        WEBAPP_ACME_EMAIL="ops@acme.test",
        WEBAPP_ACME_CA="https://pebble:14000/dir",
    )
    extra = override(certs, image, stack.http_port, stack.https_port)
    stack.variables["COMPOSE_FILE"] = f"compose/compose.yaml:compose/compose.prod.yaml:{extra}"
    stack.up()
    return stack


def served_certificate(stack: Stack) -> subprocess.CompletedProcess[str]:
    return run(
        ["curl", "--silent", "--insecure", "--verbose", "--max-time", "10",
         "--resolve", f"{DOMAIN}:{stack.https_port}:127.0.0.1",
         f"https://{DOMAIN}:{stack.https_port}/healthz"],
        check=False,
    )  # fmt: skip


def test_the_proxy_obtains_its_certificate_from_the_acme_server(acme_stack: Stack) -> None:
    answer = wait_for(
        lambda: (found := served_certificate(acme_stack)).returncode == 0 and found,
        attempts=60,
        pause=1,
        what="an HTTPS answer with the ACME certificate",
    )
    # Only pebble issues from its intermediate: the certificate came through ACME.
    assert "issuer: CN=Pebble Intermediate CA" in answer.stderr
    assert "< HTTP/2 200" in answer.stderr
    proxy_log = acme_stack.compose("logs", "--no-color", "proxy").stdout
    assert "certificate obtained successfully" in proxy_log
    assert DOMAIN in proxy_log
