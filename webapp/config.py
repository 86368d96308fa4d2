"""The one app factory: validated settings in, WSGI application out."""

from __future__ import annotations

from typing import Any

import pyramid_tm
from pyramid.config import Configurator
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.session import SignedCookieSessionFactory
from pyramid.tweens import EXCVIEW
from sqlalchemy.engine import Engine

from webapp.db.engine import make_engine
from webapp.http.body_limit import REQUEST_MAX, BodyLimit
from webapp.http.request import AppRequest
from webapp.ops import jsonlog, replica, slots
from webapp.settings import Settings, read


def make_app(settings: Settings, *, engine: Engine | None = None) -> Any:
    """Build the WSGI app. `engine` lets tests share one engine across apps."""
    jsonlog.configure(settings.log_level)
    engine = engine or make_engine(settings.database_url)
    config = Configurator(
        settings={
            "webapp.settings": settings,
            "webapp.engine": engine,
            "webapp.replica": replica.load(replicator=False),
            "webapp.slot": read("WEBAPP_SLOT") or "",
            # While this file exists, /readyz says 503 and the proxy leaves this slot be.
            "webapp.drain_marker": slots.drain_marker(
                read("WEBAPP_SOCKET_DIR") or "", read("WEBAPP_SLOT") or ""
            ),
            # A few attempts absorb a writer that held the lock past busy_timeout.
            "retry.attempts": 3,
            "tm.manager_hook": pyramid_tm.explicit_manager,
            # Reads and the API's creates skip the transaction manager (see
            # webapp.notes.api.transaction_managed); there is
            # no authentication, so there is no user to note on a transaction either.
            "tm.activate_hook": "webapp.notes.api.transaction_managed",
            "tm.annotate_user": False,
            "jinja2.directories": "webapp:templates",
            "jinja2.autoescape": True,
        }
    )
    # Transactions: one per request, retried as a whole on transient busy errors.
    config.include("pyramid_retry")
    # pyramid_tm's tween, without its includeme: that adds `request.tm` as a request
    # property, and any such property makes Pyramid build a new Request subclass for
    # every request. AppRequest declares both properties on one class instead.
    config.add_tween("pyramid_tm.tm_tween_factory", over=EXCVIEW)
    config.set_request_factory(AppRequest)
    # The session factories behind `request.dbsession`.
    config.include("webapp.db")
    # Sessions exist only to hold the page form's CSRF token, signed with SECRET_KEY.
    config.set_session_factory(
        SignedCookieSessionFactory(
            settings.secret_key,
            cookie_name="webapp_session",
            httponly=True,
            samesite="Strict",
            # TLS ends in front of the app when there is any; over plain HTTP a Secure
            # cookie would never come back and the form could not be used at all.
            secure=False,
        )
    )
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    # Every unsafe request is checked, unless its view opts out (the JSON API does).
    config.set_default_csrf_options(require_csrf=True)
    config.include("pyramid_jinja2")
    config.add_jinja2_renderer(".html")
    # Request id and security headers on every response, unreadable requests refused,
    # every error rendered as problem+json.
    config.include("webapp.http")
    config.include("webapp.routes")
    # The features: notes (API and page), then the operators' endpoints.
    config.include("webapp.notes")
    config.include("webapp.ops")
    app = config.make_wsgi_app()
    return BodyLimit(app, REQUEST_MAX)
