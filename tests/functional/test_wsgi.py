"""The WSGI module: builds the app from the environment, or exits with one line."""

from __future__ import annotations

import importlib
import sys

import pytest

from .conftest import migrated_engine


def _import_wsgi():
    sys.modules.pop("webapp.wsgi", None)
    return importlib.import_module("webapp.wsgi")


def test_wsgi_builds_the_app_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("APP_ENV", "dev")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    module = _import_wsgi()
    assert callable(module.application)
    assert module.application.registry["dbsession_factories"]


def test_wsgi_config_error_exits_4_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", "sqlite:////data/app.db")
    monkeypatch.setenv("APP_ENV", "qa")
    with pytest.raises(SystemExit) as caught:
        _import_wsgi()
    assert caught.value.code == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "APP_ENV='qa'" in err
    sys.modules.pop("webapp.wsgi", None)
