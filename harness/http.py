"""HTTP to a stack or a test host on 127.0.0.1, with answers kept whole for checking."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

JSON_TIMEOUT_S = 10
# What a request to a server that is down, restarting or cut off raises.
UNREACHABLE = (OSError, http.client.HTTPException)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """HTTP/1.1 to one 127.0.0.1 port over a kept-alive connection; reconnects on failure.

    Not thread-safe: one per thread. Raises OSError or http.client.HTTPException when the
    server is unreachable or drops the connection (a crash drill counts those).
    """

    port: int
    timeout: float = 15.0
    connection: http.client.HTTPConnection | None = None

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Response:
        """Send `body` as given (any bytes at all) and return the full answer."""
        sent = dict(headers or {})
        if body is not None and content_type is not None:
            sent.setdefault("Content-Type", content_type)
        reused = self.connection is not None
        try:
            return self._exchange(method, path, body, sent)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            if not reused:
                raise
        # Gunicorn closes idle kept-alive connections (keepalive 2 s): a connection that
        # sat idle may be gone before the request reached the app, so retry once afresh.
        return self._exchange(method, path, body, sent)

    def _exchange(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, self.timeout)
        try:
            self.connection.request(method, path, body=body, headers=headers)
            answer = self.connection.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if answer.will_close:
            self.close()
        return Response(answer.status, dict(answer.headers.items()), data)

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send `payload` as JSON (None: no body)."""
        body = None if payload is None else json.dumps(payload).encode()
        return self.send(method, path, body, headers)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def once(port: int, method: str, path: str, payload: Any = None, **options: Any) -> Response:
    """One JSON request on a connection of its own (safe from any thread); `options` are
    `headers` and `timeout`."""
    client = Client(port, options.pop("timeout", JSON_TIMEOUT_S))
    try:
        return client.request(method, path, payload, **options)
    finally:
        client.close()


def json_request(
    port: int, method: str, path: str, body: Any = None, timeout: float = JSON_TIMEOUT_S
) -> tuple[int, Any]:
    """One JSON request to 127.0.0.1:PORT: (status, decoded body or None); (0, None) when
    nothing answers in time."""
    try:
        answer = once(port, method, path, body, timeout=timeout)
    except UNREACHABLE:
        return 0, None
    try:
        return answer.status, answer.json() if answer.body else None
    except ValueError:
        return answer.status, None
