"""The two app slots behind the proxy, and how one hands over to the other.

Compose runs Gunicorn as `app`, and a release brings the new one up first as `app_next`
beside it. Each slot listens on its own unix socket in WEBAPP_SOCKET_DIR; the proxy lists
both and sends requests only to a slot whose /readyz passes its own health checks. A slot
leaves rotation by draining: its drain marker makes /readyz answer 503, the proxy stops
sending it new requests, and the release stops it once its last request has finished
(ansible/roles/webapp/files/release_up.sh). A slot's Gunicorn clears its marker as it
starts, so a restarted slot comes back into rotation.
"""

from __future__ import annotations

from webapp.settings import SLOTS

__all__ = ["SLOTS", "drain_marker", "socket_path"]


def socket_path(directory: str, slot: str) -> str:
    return f"{directory}/{slot}.sock"


def drain_marker(directory: str, slot: str) -> str:
    return f"{directory}/{slot}.draining"
