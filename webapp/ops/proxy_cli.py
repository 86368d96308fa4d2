"""`python -m webapp proxy config|run`: the edge proxy's entry point.

`config` prints Caddy's JSON configuration for the current environment; `run` checks the
settings, writes that configuration and replaces itself with `caddy run`, so that Caddy
is the container's main process and gets its signals. A bad setting is one line on
stderr and exit 2, before Caddy starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from webapp import settings
from webapp.ops import proxy_config
from webapp.ops.cli import OneLineParser


def parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m webapp proxy", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=OneLineParser)
    verbs.add_parser("config", help="print Caddy's JSON configuration")
    run = verbs.add_parser("run", help="check the settings, then exec caddy with them")
    run.add_argument(
        "--config-dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the generated caddy.json is written (default: the temporary directory)",
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        found = proxy_config.load(environ)
    except settings.ConfigError as exc:
        print(f"webapp: configuration error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(proxy_config.caddy_config(found), indent=2) + "\n"
    if args.verb == "config":
        sys.stdout.write(text)
        return 0
    caddy = shutil.which("caddy")
    if caddy is None:
        print("webapp: proxy run: caddy is not on PATH; run the project image", file=sys.stderr)
        return 1
    path = args.config_dir / "caddy.json"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(
            f"webapp: proxy run: cannot write {path} ({exc.strerror}); "
            "give --config-dir a writable directory",
            file=sys.stderr,
        )
        return 1
    print(
        json.dumps(
            {"level": "INFO", "logger": "webapp.proxy", "message": proxy_config.describe(found)}
        ),
        file=sys.stderr,
        flush=True,
    )
    # Caddy keeps nothing under $HOME: its data goes to the volume (proxy_config.DATA_DIR).
    child = {**environ, "HOME": str(args.config_dir), "XDG_CONFIG_HOME": str(args.config_dir)}
    os.execve(caddy, [caddy, "run", "--config", str(path)], child)  # noqa: S606 - no shell
    return 0  # pragma: no cover - execve does not return
