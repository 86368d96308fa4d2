"""JSON log lines: one object per record, with the request id and extras."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from types import SimpleNamespace

from webapp.ops import jsonlog
from webapp.ops.gunicorn_logging import JsonLogger


def _record(**extra) -> logging.LogRecord:
    record = logging.LogRecord("webapp.test", logging.WARNING, __file__, 1, "hi %s", ("x",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_formatter_emits_one_json_object_with_extras_and_request_id():
    token = jsonlog.request_id.set("rid-1")
    try:
        line = jsonlog.JsonFormatter().format(_record(path="/p", _private=1))
    finally:
        jsonlog.request_id.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "hi x" and entry["level"] == "WARNING"
    assert entry["request_id"] == "rid-1" and entry["path"] == "/p"
    assert "_private" not in entry and "args" not in entry


def test_formatter_includes_exceptions_in_the_same_line():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    line = jsonlog.JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_configure_replaces_its_own_handler_only():
    root = logging.getLogger()
    before = len(root.handlers)
    jsonlog.configure("INFO")
    jsonlog.configure("DEBUG")
    assert len(root.handlers) == before + (
        0 if any(isinstance(h.formatter, jsonlog.JsonFormatter) for h in root.handlers[:before])
        else 1
    )  # fmt: skip
    assert root.level == logging.DEBUG
    assert logging.getLogger("alembic").level == logging.DEBUG
    jsonlog.configure("WARNING")
    assert logging.getLogger("alembic").level == logging.WARNING


def _cfg(**overrides):
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("accesslog", "-")
    for key, value in overrides.items():
        cfg.set(key, value)
    return cfg


def test_gunicorn_access_lines_are_json(capsys):
    logger = JsonLogger(_cfg())
    response = SimpleNamespace(status="201 Created", headers=[("X-Request-ID", "abc")], sent=12)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/notes",
        "QUERY_STRING": "",
        "REMOTE_ADDR": "127.0.0.1",
    }
    logger.access(response, None, environ, timedelta(milliseconds=12.5))
    entry = json.loads(capsys.readouterr().out.strip())
    assert entry["event"] == "access" and entry["status"] == 201
    assert entry["method"] == "POST" and entry["path"] == "/api/notes"
    assert entry["request_id"] == "abc" and entry["duration_ms"] == 12.5


def test_gunicorn_access_tolerates_odd_statuses(capsys):
    logger = JsonLogger(_cfg())
    response = SimpleNamespace(status="weird", headers=None, sent=0)
    logger.access(response, None, {}, timedelta(0))
    assert json.loads(capsys.readouterr().out.strip())["status"] == 0
