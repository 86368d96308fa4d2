"""Drill 8, hardening: what the running prod stack and its Dockerfile let through.

- Each service runs as UID 10001, on a read-only root filesystem, with every capability
  dropped (CapEff 0 in /proc/1/status) and no-new-privileges, both as configured
  (`docker inspect`) and as seen from inside (a write to / fails).
- The HTML page sends CSP (with frame-ancestors) and the other security headers, and so
  does an error page.
- A forged form post is rejected: no CSRF token, a wrong one, or a JSON write sent as a
  form. A genuine post with the page's token succeeds, so the refusals mean something.
- hadolint passes on the Dockerfile.

`hardening.failures` counts the broken promises; each one is also a failure line.
"""

# Every command here is docker or hadolint with arguments built by the drill.
# ruff: noqa: S603

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from kit import console

REPO = Path(__file__).resolve().parents[1]
APP_UID = "10001"
SERVICES = ("app", "sqlite")
REQUIRED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "",  # any policy; its presence is the point
}
# A CSP must restrict by default and forbid framing; inline script would undo it.
CSP_MUST_HAVE = ("default-src", "frame-ancestors")
CSP_MUST_NOT_HAVE = ("'unsafe-inline'", "'unsafe-eval'", "*")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


def header_problems(headers: dict[str, str]) -> list[str]:
    """What the page's response headers lack; empty when it sends all of them."""
    problems = []
    for name, expected in REQUIRED_HEADERS.items():
        value = header(headers, name)
        if value is None or (expected and value.strip().lower() != expected):
            problems.append(f"{name} is {value!r}, expected {expected or 'a policy'}")
    csp = header(headers, "Content-Security-Policy")
    if csp is None:
        return [*problems, "no Content-Security-Policy header"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.split()}
    problems += [f"CSP lacks {name}" for name in CSP_MUST_HAVE if name not in directives]
    loose = {word for words in directives.values() for word in words} & set(CSP_MUST_NOT_HAVE)
    problems += [f"CSP allows {word}" for word in sorted(loose)]
    framing = directives.get("frame-ancestors", [])
    if framing and framing != ["'none'"] and header(headers, "X-Frame-Options") is None:
        problems.append(f"framing allowed by frame-ancestors {' '.join(framing)}")
    return problems


def process_problems(service: str, status: str, uid: str) -> list[str]:
    """What /proc/1/status and `id -u` inside a service show wrong."""
    fields = dict(
        (line.split(":", 1)[0], line.split(":", 1)[1].split())
        for line in status.splitlines()
        if ":" in line
    )
    problems = []
    if uid.strip() != APP_UID:
        problems.append(f"{service} runs as UID {uid.strip()!r}, not {APP_UID}")
    uids = fields.get("Uid", [])
    if not uids or any(value != APP_UID for value in uids):
        problems.append(f"{service} PID 1 has Uid {' '.join(uids)!r}, not {APP_UID}")
    cap_eff = fields.get("CapEff", [""])[0]
    if not cap_eff or int(cap_eff, 16) != 0:
        problems.append(f"{service} PID 1 has CapEff {cap_eff!r}, not 0")
    if fields.get("NoNewPrivs", [""])[0] != "1":
        problems.append(f"{service} PID 1 has NoNewPrivs {fields.get('NoNewPrivs')!r}, not 1")
    return problems


def config_problems(service: str, record: dict[str, Any]) -> list[str]:
    """What `docker inspect` of a service's container shows wrong."""
    host = record["HostConfig"]
    problems = []
    if record["Config"].get("User") != f"{APP_UID}:{APP_UID}":
        problems.append(f"{service} user is {record['Config'].get('User')!r}")
    if not host.get("ReadonlyRootfs"):
        problems.append(f"{service} root filesystem is writable")
    if "ALL" not in (host.get("CapDrop") or []) or host.get("CapAdd"):
        problems.append(
            f"{service} capabilities: drop {host.get('CapDrop')}, add {host.get('CapAdd')}"
        )
    if not any(o.startswith("no-new-privileges") for o in host.get("SecurityOpt") or []):
        problems.append(f"{service} lacks no-new-privileges")
    if host.get("Privileged"):
        problems.append(f"{service} is privileged")
    return problems


def check_containers(prod: stack.DrillStack, outcome: DrillOutcome) -> int:
    failures = 0
    for service in SERVICES:
        problems = config_problems(service, prod.compose.inspect(service))
        status = prod.exec(service, "cat", "/proc/1/status")
        problems += process_problems(service, status, prod.exec(service, "id", "-u"))
        # As seen from inside: no write reaches the image's filesystem.
        written = prod.compose.compose(
            "exec", "-T", service, "sh", "-c", "echo x > /app/drill-write", check=False
        )
        if written.returncode == 0:
            problems.append(f"{service} could write /app/drill-write")
        for problem in problems:
            outcome.fail(problem)
        failures += len(problems)
    return failures


def form(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def check_page(prod: stack.DrillStack, outcome: DrillOutcome) -> int:
    failures = 0
    # Error pages are rendered by other views; they must carry the headers too.
    for path in ("/no/such/page", "/"):
        page = prod.http.request("GET", path)
        for problem in header_problems(page.headers):
            outcome.fail(f"GET {path} ({page.status}): {problem}")
            failures += 1
    cookie = (header(page.headers, "Set-Cookie") or "").split(";", 1)[0]
    match = _TOKEN.search(page.body.decode(errors="replace"))
    if not outcome.check(bool(cookie and match), "GET / gave no session cookie or CSRF token"):
        return failures + 1
    assert match is not None
    token = match.group(1)
    marker = f"forged-{uuid.uuid4().hex[:8]}"
    urlencoded = "application/x-www-form-urlencoded"
    forgeries = {
        "a form post without a token": (
            "/", {}, form({"title": marker}), urlencoded
        ),
        "a form post with the session cookie but no token": (
            "/", {"Cookie": cookie}, form({"title": marker}), urlencoded
        ),
        "a form post with a wrong token": (
            "/", {"Cookie": cookie}, form({"title": marker, "csrf_token": "x" * 40}), urlencoded
        ),
        "a form post with the token but without its session": (
            "/", {}, form({"title": marker, "csrf_token": token}), urlencoded
        ),
        "a JSON note sent as a text/plain form to /api/notes": (
            "/api/notes", {}, f'{{"title": "{marker}"}}'.encode(), "text/plain"
        ),
        "a form-encoded note to /api/notes": (
            "/api/notes", {}, form({"title": marker}), urlencoded
        ),
    }  # fmt: skip
    for what, (path, headers, body, kind) in forgeries.items():
        answer = prod.client().send("POST", path, body, headers, content_type=kind)
        if not 400 <= answer.status < 500:
            outcome.fail(f"{what} was answered {answer.status}, not refused")
            failures += 1
    found = prod.http.request("GET", f"/api/notes?q={marker}")
    if found.status != 200 or found.json()["items"]:
        outcome.fail(f"a forged post created a note (search for {marker}: {found.status})")
        failures += 1
    genuine = prod.client().send(
        "POST", "/", form({"title": f"genuine {marker}", "csrf_token": token}),
        {"Cookie": cookie}, content_type=urlencoded,
    )  # fmt: skip
    if genuine.status != 303:
        outcome.fail(f"the genuine form post was answered {genuine.status}, not 303")
        failures += 1
    return failures


def hadolint_problems() -> list[str]:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        return ["hadolint: command not found; run the drills with nox (requirements/dev.txt)"]
    result = subprocess.run(
        [found, "--no-color", str(REPO / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if result.returncode == 0:
        return []
    lines = (result.stdout + result.stderr).strip().splitlines()
    return [f"hadolint: {line}" for line in lines] or [f"hadolint exited {result.returncode}"]


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="hardening")
    failures = 0
    for problem in hadolint_problems():
        outcome.fail(problem)
        failures += 1
    with stack.running(context, "hardening") as prod:
        with console.step("Checking users, capabilities and the read-only root"):
            failures += check_containers(prod, outcome)
        with console.step("Checking the page's headers and forged form posts"):
            failures += check_page(prod, outcome)
    outcome.figures["hardening.failures"] = failures
    outcome.notes.append(
        "checked: UID 10001, read-only root, CapEff 0, NoNewPrivs in app and sqlite; CSP and "
        "security headers on / and a 404; 6 forged posts refused, a genuine one accepted; hadolint"
    )
    return outcome
