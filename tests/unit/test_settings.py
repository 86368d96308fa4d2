"""Configuration: every variable, missing, empty and malformed, gives one clear line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.sqlite_allowance import ALLOWANCE
from webapp import settings, sqlite_floor
from webapp.settings import ConfigError, load, load_for_cli

GOOD_KEY = "k" * 16 + "Q7v9" * 8
DB_FILE = Path(tempfile.gettempdir()) / "app.db"  # its directory must exist
BASE = {"DATABASE_URL": f"sqlite:///{DB_FILE}", "APP_ENV": "dev", **ALLOWANCE}


def _error(environ) -> str:
    with pytest.raises(ConfigError) as caught:
        load(environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_dev_defaults():
    config = load(BASE)
    assert config.app_env == "dev"
    assert config.log_level == "INFO"
    assert config.secret_key == settings.DEV_SECRET
    assert config.version == config.revision == config.built_at == "unknown"
    assert config.database_path == DB_FILE


def test_prod_with_a_good_key_and_build_info():
    config = load(
        {
            **BASE,
            "APP_ENV": "prod",
            "SECRET_KEY": GOOD_KEY,
            "LOG_LEVEL": "warning",
            "APP_VERSION": "0.1.0",
            "APP_REVISION": "abc",
            "APP_BUILT_AT": "2026-11-28T00:00:00Z",
        }
    )
    assert config.secret_key == GOOD_KEY
    assert config.log_level == "WARNING"
    assert (config.version, config.revision, config.built_at) == (
        "0.1.0",
        "abc",
        "2026-11-28T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"APP_ENV": "dev"}, "DATABASE_URL is not set"),
        ({**BASE, "DATABASE_URL": ""}, "DATABASE_URL is set but empty"),
        ({**BASE, "DATABASE_URL": "postgresql://db/app"}, "not a sqlite URL"),
        ({**BASE, "DATABASE_URL": "not a url"}, "DATABASE_URL='not a url' is not a URL"),
        ({**BASE, "DATABASE_URL": "sqlite://"}, "names no database file"),
        ({**BASE, "DATABASE_URL": "sqlite:///:memory:"}, "names no database file"),
        ({**BASE, "DATABASE_URL": "sqlite:////x.db?timeout=1"}, "query options"),
        ({**BASE, "DATABASE_URL": "sqlite:////no/such/dir/app.db"}, "'/no/such/dir'"),
        ({"DATABASE_URL": "sqlite:////x.db"}, "APP_ENV is not set"),
        ({**BASE, "APP_ENV": ""}, "APP_ENV is set but empty"),
        ({**BASE, "APP_ENV": "production"}, "APP_ENV='production'"),
        (
            {**BASE, "LOG_LEVEL": "loud"},
            "LOG_LEVEL='loud' is not valid; set it to one of: DEBUG, INFO, WARNING, ERROR, "
            "CRITICAL (or unset it for INFO)",
        ),
        ({**BASE, "LOG_LEVEL": " "}, "LOG_LEVEL is set but empty"),
        ({**BASE, "APP_ENV": "prod"}, "SECRET_KEY is not set and APP_ENV=prod"),
        ({**BASE, "APP_ENV": "prod", "SECRET_KEY": "short"}, "SECRET_KEY is 5 characters"),
        ({**BASE, "APP_ENV": "prod", "SECRET_KEY": "changeme"}, "placeholder"),
        (
            {**BASE, "APP_ENV": "prod", "SECRET_KEY": "please-changeme-" + "x" * 40},
            "placeholder",
        ),
        ({**BASE, "APP_ENV": "prod", "SECRET_KEY": settings.DEV_SECRET}, "placeholder"),
        ({**BASE, "SECRET_KEY": ""}, "SECRET_KEY is set but empty"),
        ({**BASE, "SECRET_KEY": GOOD_KEY, "SECRET_KEY_FILE": "/x"}, "both set"),
        ({**BASE, "SECRET_KEY_FILE": "/no/such/key"}, "SECRET_KEY_FILE='/no/such/key'"),
        ({**BASE, "SECRET_KEY_FILE": ""}, "SECRET_KEY_FILE is set but empty"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(environ, names):
    assert names in _error(environ)


def test_secret_from_file_is_stripped(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(GOOD_KEY + "\n")
    config = load({**BASE, "APP_ENV": "prod", "SECRET_KEY_FILE": str(key_file)})
    assert config.secret_key == GOOD_KEY


def test_empty_or_binary_secret_file_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "is empty" in _error({**BASE, "SECRET_KEY_FILE": str(empty)})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in _error({**BASE, "SECRET_KEY_FILE": str(binary)})


def test_unreadable_secret_file_names_the_path(tmp_path):
    assert str(tmp_path) in _error({**BASE, "SECRET_KEY_FILE": str(tmp_path)})


def test_short_key_from_file_names_the_file_variable(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("short")
    message = _error({**BASE, "APP_ENV": "prod", "SECRET_KEY_FILE": str(key_file)})
    assert message.startswith("SECRET_KEY_FILE is 5 characters")


def test_secret_value_never_appears_in_messages():
    secret = "placeholder-" + "s3cr3t" * 8
    message = _error({**BASE, "APP_ENV": "prod", "SECRET_KEY": secret})
    assert secret not in message


def test_cli_needs_only_the_database():
    config = load_for_cli({"DATABASE_URL": "sqlite:///relative.db"})
    assert str(config.database_path) == "relative.db"
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_for_cli({})


def test_prod_refuses_an_sqlite_below_the_floor(monkeypatch):
    monkeypatch.setattr(sqlite_floor, "library_version", lambda: "3.46.1")
    environ = {**BASE, "APP_ENV": "prod", "SECRET_KEY": "k" * 40}
    environ.pop("ALLOW_OLD_SQLITE", None)
    message = _error(environ)
    assert message == (
        "SQLite 3.46.1 is below the floor 3.51.3 (the WAL-reset corruption bug is fixed from "
        "3.51.3 on); run the image built by `nox -s build`, or link Python against a newer "
        "libsqlite3"
    )
    allowed = load({**environ, "ALLOW_OLD_SQLITE": "1"})
    assert allowed.sqlite_warning is not None and "3.46.1" in allowed.sqlite_warning


def test_dev_runs_on_an_old_sqlite_with_one_warning_and_a_new_one_without(monkeypatch):
    monkeypatch.setattr(sqlite_floor, "library_version", lambda: "3.40.1")
    dev = {key: value for key, value in BASE.items() if key != "ALLOW_OLD_SQLITE"}
    warning = load(dev).sqlite_warning
    assert warning is not None and warning.startswith("SQLite 3.40.1 is below the floor")
    monkeypatch.setattr(sqlite_floor, "library_version", lambda: "3.53.4")
    assert load(dev).sqlite_warning is None
    assert load({**dev, "APP_ENV": "prod", "SECRET_KEY": "k" * 40}).sqlite_warning is None
