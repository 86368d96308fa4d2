"""What every request and response go through, whatever the view: the body limit, the
request checks, the tweens that add the request id and security headers, and the
exception views that turn every error into problem+json.
"""

from __future__ import annotations

from typing import Any

from pyramid.events import NewRequest
from pyramid.tweens import INGRESS

from webapp.http.request_checks import refuse_unreadable_requests


def includeme(config: Any) -> None:
    # Response decoration wraps everything below it, exception views included.
    headers_tween = "webapp.http.tweens.security_headers_tween_factory"
    config.add_tween(headers_tween, under=INGRESS)
    config.add_tween("webapp.http.tweens.request_id_tween_factory", under=headers_tween)
    config.add_subscriber(refuse_unreadable_requests, NewRequest)
    config.scan("webapp.http.errors")
