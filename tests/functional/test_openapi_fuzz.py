"""Schemathesis against the in-process app: generated requests from openapi.json,
checking that nothing is a 5xx and every response conforms to the document.

The checks and the two answers they are told about are in harness.fuzzing, shared with
the fuzz drill.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from harness.fuzzing import CONFIG
from webapp.config import make_app

from .conftest import migrated_engine, settings_for


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "app.db"
    engine = migrated_engine(path)
    yield make_app(settings_for(path), engine=engine)
    engine.dispose()


def _operations() -> list[tuple[str, str]]:
    spec = json.loads(resources.files("webapp").joinpath("openapi.json").read_text())
    return [
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete")
    ]


@pytest.mark.parametrize(("path", "method"), _operations())
def test_generated_requests_conform_and_never_5xx(fuzz_app, path, method):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app, config=CONFIG)
    operation = schema[path][method.upper()]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def generated(case):
        case.call_and_validate()

    generated()
