"""The drill stack's pure parts: names, compose files, problem answers."""

from __future__ import annotations

import json
import os

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
