"""Running the service: health and build endpoints (views), database readiness and
backups, the `python -m webapp` commands (cli), JSON logs and the Gunicorn hooks.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.scan("webapp.ops.views")
