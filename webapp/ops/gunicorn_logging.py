"""Gunicorn's logger, speaking the service's JSON lines: one object per request or event.

Selected by `logger_class` in gunicorn.conf.py.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from webapp.ops.jsonlog import JsonFormatter


class JsonLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        headers = {name.lower(): value for name, value in (resp.headers or [])}
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        try:
            status_code = int(status)
        except (TypeError, ValueError):
            status_code = 0
        duration_ms = request_time.total_seconds() * 1000
        self.access_log.log(
            logging.INFO,
            "request",
            extra={
                "event": "access",
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "query": environ.get("QUERY_STRING") or None,
                "status": status_code,
                "duration_ms": round(duration_ms, 2),
                "bytes": getattr(resp, "sent", None),
                "request_id": headers.get("x-request-id"),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            },
        )
