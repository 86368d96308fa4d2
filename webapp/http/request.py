"""The service's Request class: the per-request properties the app adds to Pyramid's.

Declared here rather than with `config.add_request_method(..., reify=True)`, because
Pyramid applies such properties by creating a new subclass of Request for every request,
which cost more than a whole note lookup.
"""

from __future__ import annotations

from typing import Any

import pyramid_tm
from pyramid.decorator import reify
from pyramid.request import Request
from sqlalchemy.orm import Session

from webapp.db.session import request_session


class AppRequest(Request):
    @reify
    def tm(self) -> Any:
        """The transaction manager that pyramid_tm's tween begins and commits."""
        return pyramid_tm.create_tm(self)

    @reify
    def dbsession(self) -> Session:
        return request_session(self)
