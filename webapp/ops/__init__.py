"""Running the service: health and build endpoints (views), database readiness and
backups, the `python -m webapp` commands (cli), JSON logs, Prometheus metrics and the
Gunicorn hooks.
"""

from __future__ import annotations

from typing import Any

from pyramid.tweens import INGRESS


def includeme(config: Any) -> None:
    config.scan("webapp.ops.views")
    # Outermost, so the status it counts is the one the client gets.
    config.add_tween(
        "webapp.ops.metrics.metrics_tween_factory",
        under=INGRESS,
        over="webapp.http.tweens.security_headers_tween_factory",
    )
