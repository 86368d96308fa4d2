"""Drill 1: fuzz the running container's API, generated and hand-made.

Schemathesis reads /openapi.json from the container and sends generated requests for
every operation, with the checks the functional fuzz test uses (harness.fuzzing, so both
agree on the two answers no schema can express).
Then hostile requests no generator makes: deep nesting, huge numbers, invalid UTF-8, NUL
bytes, 10 MB bodies, a thousand tags, SQL and FTS5 syntax in `q`. A 5xx anywhere, a
response that breaks the spec, or an error that is not problem+json fails the drill.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from harness.fuzzing import CONFIG
from kit import console

# Examples per operation. Four operations take no input (one example each), so the full
# run's seven others give well over 1,000 requests.
EXAMPLES_FULL = 160
EXAMPLES_QUICK = 25
SHOWN_FAILURES = 5
TEN_MB = 10 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"
# What schemathesis raises for a response that breaks the spec: one Failure (an
# AssertionError) or a FailureGroup, which is a BaseExceptionGroup, not an Exception.
VALIDATION_FAILURES = (AssertionError, BaseExceptionGroup)


@dataclass
class Tally:
    """What the generated requests did; shared by Hypothesis' calls, so locked."""

    requests: int = 0
    server_errors: int = 0
    nonconforming: int = 0
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int, failure: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.server_errors += status >= 500
            if failure is not None:
                self.nonconforming += 1
                if len(self.examples) < SHOWN_FAILURES:
                    self.examples.append(failure)


def first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


def generated(port: int, examples: int, tally: Tally) -> None:
    """Every operation in the container's own openapi.json, `examples` cases each."""
    base = f"http://127.0.0.1:{port}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=CONFIG)
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise ValueError(
                f"the container's openapi.json has a broken operation: {result.err()}"
            )
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def one(case: Any) -> None:
            response = case.call(base_url=base, timeout=30)
            failure = None
            try:
                case.validate_response(response)
            except VALIDATION_FAILURES as error:
                # Counted rather than raised: Hypothesis would stop at the first one and
                # shrink it, and the drill reports how many there were.
                failure = f"{case.method} {case.formatted_path} -> {response.status_code}: " + (
                    first_line(error)
                )
            tally.record(response.status_code, failure)

        one()


@dataclass(frozen=True)
class Hostile:
    """One hand-made request and the statuses it may get (all must be < 500)."""

    what: str
    method: str
    path: str
    body: bytes | None = None
    expected: frozenset[int] = frozenset({400})
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"


def nested(depth: int) -> bytes:
    return b'{"title": ' + b"[" * depth + b"]" * depth + b"}"


def hostile_cases() -> list[Hostile]:
    huge_int = b"9" * 5000  # beyond Python's 4,300-digit int parsing limit
    thousand_tags = b'{"title": "t", "tags": [' + b",".join(
        b'"tag%d"' % n for n in range(1000)
    ) + b"]}"  # fmt: skip
    cases = [
        Hostile("nesting 100,000 deep", "POST", "/api/notes", nested(100_000)),
        Hostile("nesting 100,000 deep, top level", "POST", "/api/notes", b"[" * 100_000),
        Hostile("nesting 100 deep", "POST", "/api/notes", nested(100), frozenset({422})),
        Hostile("5,000-digit integer", "POST", "/api/notes", b'{"title": ' + huge_int + b"}"),
        Hostile("1e999999 title", "POST", "/api/notes", b'{"title": 1e999999}', frozenset({422})),
        Hostile("NaN", "POST", "/api/notes", b'{"title": "t", "x": NaN}'),
        Hostile("Infinity", "POST", "/api/notes", b'{"title": Infinity}'),
        Hostile("20-digit note id", "GET", "/api/notes/" + "9" * 20, None, frozenset({404})),
        Hostile("int64+1 note id", "GET", "/api/notes/9223372036854775808", None,
                frozenset({404})),
        Hostile("limit=1e999", "GET", "/api/notes?limit=1e999", None),
        Hostile("limit=-1", "GET", "/api/notes?limit=-1", None),
        Hostile("huge limit", "GET", "/api/notes?limit=" + "9" * 40, None),
        Hostile("invalid UTF-8 body", "POST", "/api/notes", b'{"title": "\xff\xfe"}'),
        Hostile("overlong UTF-8 NUL", "POST", "/api/notes", b'{"title": "\xc0\x80"}'),
        Hostile("lone surrogate escape", "POST", "/api/notes", b'{"title": "\\ud800"}',
                frozenset({422})),
        Hostile("invalid UTF-8 in q", "GET", "/api/notes?q=%ff%fe", None, frozenset({200, 400})),
        Hostile("invalid UTF-8 in cursor", "GET", "/api/notes?cursor=%ff", None),
        Hostile("invalid UTF-8 in path", "GET", "/api/notes/%ff", None, frozenset({400, 404})),
        Hostile("NUL in title", "POST", "/api/notes", b'{"title": "a\\u0000b"}', frozenset({422})),
        Hostile("raw NUL byte in body", "POST", "/api/notes", b'{"title": "a\x00b"}'),
        Hostile("NUL in q", "GET", "/api/notes?q=a%00b", None, frozenset({200, 400})),
        Hostile("NUL in tag", "POST", "/api/notes", b'{"title": "t", "tags": ["\\u0000"]}',
                frozenset({422})),
        Hostile("NUL in path", "GET", "/api/notes/1%00", None, frozenset({404})),
        Hostile("10 MB body", "POST", "/api/notes",
                b'{"title": "t", "body": "' + b"x" * TEN_MB + b'"}', frozenset({413})),
        Hostile("10 MB body, chunked", "POST", "/api/notes",
                b'{"title": "t", "body": "' + b"x" * TEN_MB + b'"}', frozenset({413}),
                {"Transfer-Encoding": "chunked"}),
        Hostile("10 MB PUT", "PUT", "/api/notes/1", b"[" + b"0," * (TEN_MB // 2) + b"0]",
                frozenset({413}), {"If-Match": '"v1"'}),
        Hostile("a thousand tags", "POST", "/api/notes", thousand_tags, frozenset({422})),
        Hostile("bad Content-Length", "POST", "/api/notes", b"{}", frozenset({400, 422}),
                {"Content-Length": "12abc"}),
        Hostile("not JSON", "POST", "/api/notes", b"{title: t}"),
        Hostile("wrong content type", "POST", "/api/notes", b'{"title": "t"}', frozenset({415}),
                content_type="text/plain"),
        Hostile("9,000-character URL", "GET", "/api/notes?q=" + "a" * 9000, None,
                frozenset({414})),
        Hostile("huge If-Match", "PUT", "/api/notes/1", b'{"title": "t"}', frozenset({400, 431}),
                {"If-Match": '"' + "v" * 10_000 + '"'}),
        # The HTML form: every hostile post is stopped by the CSRF check or the size limit.
        Hostile("form without CSRF token", "POST", "/", b"title=a&body=b", frozenset({403}),
                content_type=FORM),
        Hostile("form with invalid UTF-8", "POST", "/", b"title=%ff%fe&body=\xff",
                frozenset({403}), content_type=FORM),
        Hostile("form with NUL and a forged token", "POST", "/", b"title=a%00b&csrf_token=x",
                frozenset({403}), content_type=FORM),
        Hostile("10 MB form", "POST", "/", b"title=" + b"a" * TEN_MB, frozenset({413}),
                content_type=FORM),
        Hostile("broken multipart form", "POST", "/", b"--x\r\n\r\n", frozenset({403}),
                content_type="multipart/form-data; boundary=x"),
        Hostile("PATCH", "PATCH", "/api/notes/1", b"{}", frozenset({405})),
        Hostile("TRACE", "TRACE", "/", None, frozenset({405})),
        Hostile("encoded path traversal", "GET", "/static/%2e%2e/%2e%2e/etc/passwd", None,
                frozenset({404})),
        Hostile("junk cursor", "GET", "/api/notes?cursor=" + "A" * 400, None),
        Hostile("junk page cursor", "GET", "/?cursor=%ff%00zz", None),
    ]  # fmt: skip
    for q in SEARCH_ATTACKS:
        path = f"/api/notes?q={quote(q, safe='')}"
        cases.append(Hostile(f"q={q!r}", "GET", path, None, frozenset({200, 400})))
        cases.append(Hostile(f"page q={q!r}", "GET", "/" + path[10:], None, frozenset({200, 400}),
                             content_type=None))  # fmt: skip
    return cases


# SQL injection and FTS5 operators: the search must treat each as plain words.
SEARCH_ATTACKS = [
    "' OR 1=1 --",
    "'; DROP TABLE notes; --",
    '" OR ""="',
    "1) UNION SELECT sqlite_version() --",
    "%' AND 1=0 UNION SELECT name FROM sqlite_master --",
    '"unterminated',
    "NEAR(a b, 999999999999)",
    "a AND OR NOT b",
    "title:secret",
    "{title body}: x",
    "^start",
    "prefix*",
    "*",
    "(((",
    "-x",
    "a:b:c:d",
    "x" * 500,
    "x " * 250,
    "notes MATCH 'x'",
    "\\x00",
]


def chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def exchange(port: int, case: Hostile, timeout: float = 60) -> stack.Response:
    """Send `case` over a raw socket and read the answer even if it comes mid-upload.

    A server may answer a 10 MB body with 413 after its headers and close without reading
    the rest, as HTTP allows; curl and browsers then still read that answer. http.client
    writes the whole body first and only sees a broken pipe, so this client, like curl,
    stops sending as soon as the server speaks.
    """
    headers = {"Host": f"127.0.0.1:{port}", "Connection": "close", **case.headers}
    body = case.body
    if body is not None:
        if case.content_type is not None:
            headers.setdefault("Content-Type", case.content_type)
        if headers.get("Transfer-Encoding") == "chunked":
            body = chunked(body)
        else:
            headers.setdefault("Content-Length", str(len(body)))
    head = f"{case.method} {case.path} HTTP/1.1\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    outgoing = memoryview(head.encode("latin-1") + (body or b""))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            # Bounded: each round sends at least one byte or ends the loop.
            for _ in range(len(outgoing) + 1):
                if not outgoing:
                    break
                events = selector.select(timeout)
                if not events or any(mask & selectors.EVENT_READ for _, mask in events):
                    break  # the server answers (or went quiet): read what it says
                try:
                    sent = sock.send(outgoing[:262144])
                except (BrokenPipeError, ConnectionResetError):
                    break
                outgoing = outgoing[sent:]
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return stack.Response(answer.status, dict(answer.headers.items()), answer.read())


def send_hostile(port: int, case: Hostile) -> tuple[int, str | None]:
    """The answer's status, and why it breaks a promise (None when it keeps them)."""
    try:
        answer = exchange(port, case)
    except (OSError, http.client.HTTPException) as error:
        return 0, f"{case.what}: no HTTP answer ({type(error).__name__}: {error})"
    if answer.status >= 500:
        return answer.status, f"{case.what}: server error {answer.status}"
    if answer.status >= 400 and not stack.is_problem(answer):
        kind = answer.headers.get("Content-Type", "no Content-Type")
        return answer.status, f"{case.what}: {answer.status} is {kind}, not problem+json"
    if answer.status not in case.expected:
        wanted = "/".join(map(str, sorted(case.expected)))
        return answer.status, f"{case.what}: got {answer.status}, expected {wanted}"
    return answer.status, None


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="fuzz")
    examples = EXAMPLES_QUICK if context.quick else EXAMPLES_FULL
    tally = Tally()
    with stack.running(context, "fuzz") as prod:
        with console.step(f"Schemathesis: {examples} examples per operation"):
            generated(prod.port, examples, tally)
        console.detail(
            f"{tally.requests} generated requests, {tally.nonconforming} broke the spec"
        )
        # Seeded after the generated requests (they may delete any note): the hostile
        # ones, SQL in `q` among them, must leave it and its table intact.
        seeded = prod.http.request("POST", "/api/notes", {"title": "seed", "tags": ["fuzz"]})
        outcome.check(seeded.status == 201, f"seeding a note answered {seeded.status}")
        hostile = hostile_cases()
        hostile_failures = []
        with console.step(f"{len(hostile)} hand-made hostile requests"):
            for case in hostile:
                status, failure = send_hostile(prod.port, case)
                if status >= 500:
                    tally.server_errors += 1
                if failure is not None:
                    hostile_failures.append(failure)
        tally.requests += len(hostile)
        if seeded.status == 201:
            survived = prod.http.request("GET", f"/api/notes/{seeded.json()['id']}")
            outcome.check(
                survived.status == 200 and survived.json()["title"] == "seed",
                f"after the hostile requests the seeded note is gone (GET: {survived.status})",
            )
        integrity = prod.integrity_check()
        outcome.check(integrity == "ok", f"integrity_check after fuzzing: {integrity[:200]}")
    outcome.figures.update({
        "fuzz.requests": tally.requests,
        "fuzz.server_errors": tally.server_errors,
        "fuzz.nonconforming": tally.nonconforming,
    })  # fmt: skip
    outcome.notes.append(
        f"{tally.requests - len(hostile)} generated requests ({examples} examples per "
        f"operation) and {len(hostile)} hand-made hostile ones"
    )
    minimum = 1000 if not context.quick else 150
    outcome.check(
        tally.requests >= minimum,
        f"only {tally.requests} fuzz requests were sent; the drill promises {minimum}",
    )
    outcome.check(tally.server_errors == 0, f"{tally.server_errors} requests got a 5xx")
    if tally.nonconforming:
        outcome.fail(
            f"{tally.nonconforming} responses broke openapi.json, e.g. {tally.examples[0]}"
        )
        outcome.notes.extend(f"nonconforming: {example}" for example in tally.examples[1:])
    if hostile_failures:
        outcome.fail(f"{len(hostile_failures)} hostile requests: {hostile_failures[0]}")
        outcome.notes.extend(f"hostile: {failure}" for failure in hostile_failures[1:])
    return outcome
