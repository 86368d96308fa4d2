"""Drill 8, secrets: the prod key must not show up where operators and attackers look.

The stack gets a fresh random key (drills.stack writes it to a 0600 file owned by 10001).
After the app has been exercised, errors included, the key's value is searched for in:

- every layer of the image (`docker save`, each layer tar scanned byte for byte; a
  string known to be in the image's code must be found too, or the scan is blind),
- `docker inspect` of both containers (env, labels, mounts, command),
- both containers' logs, and the exercised answers' headers and bodies,
- the one-line refusals of a container given that key in a refused form (beside a key
  file, with a placeholder marker, cut short): the message must never echo it.

`secrets.leaks` counts the places it was found; each is also a failure line.
"""

# Every command here is docker with arguments built by the drill.

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from harness import commands
from harness.http import Response
from kit import console
from webapp.settings import DEV_SECRET

CHUNK = 1 << 20
SERVICES = ("app", "sqlite")


def found_in(chunks: Iterable[bytes], needles: list[bytes]) -> set[bytes]:
    """Which `needles` occur in the concatenation of `chunks`, across chunk borders too."""
    found: set[bytes] = set()
    keep = max(map(len, needles)) - 1
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found |= {needle for needle in needles if needle in window}
        tail = window[-keep:] if keep else b""
    return found


def read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def scan_image(image_tar: Path, needles: list[bytes]) -> dict[bytes, list[str]]:
    """For each needle, the members of a `docker save` archive that hold it.

    Each layer is itself a tar: its files are scanned one by one (names too), so a match
    names the file inside the layer.
    """
    where: dict[bytes, list[str]] = {needle: [] for needle in needles}
    with tarfile.open(image_tar) as archive:
        for member in archive:
            if not member.isfile():
                continue
            stream = archive.extractfile(member)
            assert stream is not None
            if not member.name.endswith("layer.tar"):
                for needle in found_in(read_chunks(stream), needles):
                    where[needle].append(member.name)
                continue
            with tarfile.open(fileobj=stream, mode="r|") as layer:
                for entry in layer:
                    names = f"{entry.name}\n{entry.linkname}".encode()
                    inner = layer.extractfile(entry) if entry.isfile() else None
                    hits = found_in([names], needles)
                    if inner is not None:
                        hits |= found_in(read_chunks(inner), needles)
                    for needle in hits:
                        where[needle].append(f"{member.name}:{entry.name}")
    return where


def docker(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return commands.docker(*argv, check=False, timeout=timeout)


def exercise(prod: stack.DrillStack) -> list[Response]:
    """Requests that make the app log: pages, writes, conflicts and every kind of error."""
    client = prod.client()
    answers = [
        client.request("GET", "/"),
        client.request("GET", "/healthz"),
        client.request("GET", "/readyz"),
        client.request("GET", "/version"),
        client.request("GET", "/api/notes?q=secret"),
        client.request("GET", "/no/such/page"),
        client.send(
            "POST", "/", b"title=forged", content_type="application/x-www-form-urlencoded"
        ),
        client.send("POST", "/api/notes", b'{"title": '),
        client.send("POST", "/api/notes", b"\xff\xfe", content_type="text/plain"),
        client.request("POST", "/api/notes", {"title": "x" * 100_000}),
    ]
    created = client.request("POST", "/api/notes", {"title": "secrets drill", "body": "b"})
    answers.append(created)
    if created.status == 201:
        path = f"/api/notes/{created.json()['id']}"
        answers.append(client.request("PUT", path, {"title": "t"}, {"If-Match": '"stale"'}))
        answers.append(client.request("DELETE", path))
    client.close()
    return answers


def refusal_outputs(image: str, key: str) -> dict[str, str]:
    """What the image prints when refusing a configuration that carries `key`."""
    base = ["run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL"]
    base += ["--env", "APP_ENV=prod", "--env", "DATABASE_URL=sqlite:////data/app.db"]
    cases = {
        "beside SECRET_KEY_FILE": ["--env", f"SECRET_KEY={key}", "--env", "SECRET_KEY_FILE=/x"],
        "with a placeholder marker": ["--env", f"SECRET_KEY=changeme-{key}"],
        "cut short": ["--env", f"SECRET_KEY={key[:20]}"],
    }
    outputs = {}
    for what, extra in cases.items():
        result = docker(*base, *extra, image, timeout=60)
        outputs[what] = result.stdout + result.stderr
    return outputs


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="secrets")
    leaks = 0

    def leak(where: str) -> None:
        nonlocal leaks
        leaks += 1
        outcome.fail(f"the prod secret key appears in {where}")

    with stack.running(context, "secrets") as prod:
        key = (context.scratch / "secret_key").read_text().strip()
        needle = key.encode()
        with console.step("Exercising the app, errors included"):
            answers = exercise(prod)
            requests = len(answers)
            for answer in answers:
                if needle in answer.body or key in json.dumps(answer.headers):
                    leak(f"an HTTP answer with status {answer.status}")
        with console.step("Searching docker inspect and the logs of both services"):
            for service in SERVICES:
                if key in json.dumps(prod.compose.inspect(service)):
                    leak(f"docker inspect of {service}")
                logs = prod.compose.compose("logs", "--no-color", service, check=False)
                if key in logs.stdout + logs.stderr:
                    leak(f"the logs of {service}")
                outcome.check(
                    bool(logs.stdout.strip()),
                    f"the logs of {service} are empty: the search proves nothing",
                )
    with console.step(f"Scanning every layer of {context.image}"):
        archive = context.scratch / f"image-{uuid.uuid4().hex[:6]}.tar"
        saved = docker("save", "--output", str(archive), context.image, timeout=300)
        if outcome.check(saved.returncode == 0, f"docker save failed: {saved.stderr.strip()}"):
            # The control: a string the image's code does hold must be found, or the scan is blind.
            control = DEV_SECRET.encode()
            where = scan_image(archive, [needle, control])
            archive.unlink()
            outcome.check(
                any(path.endswith("webapp/settings.py") for path in where[control]),
                f"the layer scan missed a string that webapp/settings.py holds: {where[control]}",
            )
            for member in where[needle]:
                leak(f"the image, {member}")
    with console.step("Refused configurations that carry the key"):
        for what, output in refusal_outputs(context.image, key).items():
            outcome.check(bool(output.strip()), f"no refusal printed for a key {what}")
            if key in output or key[:20] in output:
                leak(f"the refusal of a key {what}")
    outcome.figures["secrets.leaks"] = leaks
    outcome.notes.append(
        f"a random {len(key)}-character key searched in every image layer, docker inspect and "
        f"the logs of both services after {requests} requests (4xx answers included), and in "
        "3 refusals of a configuration carrying it"
    )
    return outcome
