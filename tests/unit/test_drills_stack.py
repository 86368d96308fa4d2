"""The drill stack's pure parts: names, compose files, the secret file, problem answers."""

from __future__ import annotations

import json
import os
import stat

from drills import stack
from drills.stack import Response


def problem(status: int, kind: str = "application/problem+json", **extra: object) -> Response:
    fields = {"type": "about:blank", "title": "x", "detail": "d", "request_id": None}
    body = json.dumps({**fields, "status": status, **extra})
    return Response(status, {"Content-Type": kind}, body.encode())


def test_project_names_carry_the_drill_and_the_process():
    name = stack.project_name("disk_full")
    assert name == f"drills-disk-full-{os.getpid()}"


def test_compose_files_add_overrides_after_the_prod_files(tmp_path):
    override = tmp_path / "extra.yaml"
    value = stack.compose_files(override)
    assert value.split(":") == [*stack.BASE_FILES, str(override.resolve())]


def test_secret_file_is_long_private_and_owned_by_the_app_user(tmp_path):
    path = stack.secret_file(tmp_path)
    assert len(path.read_text().strip()) >= 32
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.geteuid() == 0:
        assert (path.stat().st_uid, mode) == (stack.APP_UID, 0o600)
    else:
        assert mode == 0o644


def test_problem_answers_need_the_type_and_their_own_status():
    assert stack.is_problem(problem(507))
    assert stack.is_problem(problem(400, "application/problem+json; charset=utf-8"))
    assert not stack.is_problem(problem(400, "text/html"))
    assert not stack.is_problem(Response(400, {"Content-Type": "application/problem+json"},
                                         b"<html>"))  # fmt: skip
    partial = Response(400, {"Content-Type": "application/problem+json"}, b'{"status": 400}')
    assert not stack.is_problem(partial)
    wrong = Response(500, {"content-type": "application/problem+json"}, json.dumps(
        {"type": "t", "title": "t", "detail": "d", "request_id": None, "status": 400}
    ).encode())  # fmt: skip
    assert not stack.is_problem(wrong)


def test_client_reports_an_unreachable_port():
    client = stack.Client(stack.compose_stack.free_port(), timeout=2)
    try:
        client.request("GET", "/healthz")
    except OSError:
        pass
    else:
        raise AssertionError("a request to a closed port answered")
