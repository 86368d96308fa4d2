"""Command line of the kit: `python -m kit build|up|down`, which the nox sessions call.

    python -m kit build [--base IMAGE]
    python -m kit up [dev|prod] [--no-build]
    python -m kit down [dev|prod] [--volumes]

Run from the repository root. Every failure ends with one line saying what to do.
"""

from __future__ import annotations

import argparse
import sys

from kit import base_image, console, debs, env_file, image, stack, wheelhouse
from kit.console import human_bytes
from kit.docker_cli import engine_ready


def command_build(arguments: argparse.Namespace) -> None:
    engine_ready()
    with console.step("Ensuring the base image"):
        base = base_image.ensure(arguments.base)
        note = " (built locally from Debian packages)" if base.built_locally else ""
        console.detail(f"{base.reference} {base.image_id[:19]} {human_bytes(base.size)}{note}")
    with console.step("Ensuring the wheelhouse"):
        target = wheelhouse.probe(base.reference)
        house = wheelhouse.ensure(target)
        state = "downloaded" if house.fetched else "up to date with the lock"
        console.detail(
            f"{house.wheels} wheels, {human_bytes(house.size)}, for CPython {target.python} "
            f"{target.machine}: {state}"
        )
    with console.step("Ensuring the SQLite packages"):
        packages = debs.ensure(target.machine)
        state = "downloaded" if packages.fetched else "up to date with the lock"
        console.detail(
            f"{packages.files} packages, {human_bytes(packages.size)}, SQLite "
            f"{packages.version} for {debs.architecture(target.machine)}: {state}"
        )
    with console.step("Building the image"):
        built = image.build(base)
    record = built.record
    console.say(
        f"Built {record['image']} in {built.seconds:.1f} s "
        f"({built.executed_steps} steps run, {built.cached_steps} from cache)"
    )
    console.detail(f"id    {record['id']}")
    console.detail(
        f"size  {human_bytes(record['size'])} (base {human_bytes(base.size)}, "
        f"+{human_bytes(record['size'] - base.size)})"
    )
    console.detail(f"tags  {', '.join(record['tags'])}")
    console.detail(f"record {image.RECORD}")
    print(record["id"])


def command_up(arguments: argparse.Namespace) -> None:
    engine_ready()
    if arguments.no_build:
        record = image.load_record()
    else:
        command_build(argparse.Namespace(base=None))
        record = image.load_record()
    with console.step(f"Starting the {arguments.environment} stack on {record['image']}"):
        started = stack.up(arguments.environment, image=record["image"])
    console.say(f"The {arguments.environment} stack is healthy after {started.seconds:.1f} s")
    console.detail(f"open {started.url}")
    print(started.url)


def command_down(arguments: argparse.Namespace) -> None:
    engine_ready()
    what = "containers and volumes (data deleted)" if arguments.volumes else "containers"
    with console.step(f"Stopping the {arguments.environment} stack: removing {what}"):
        stack.down(arguments.environment, volumes=arguments.volumes)
    if not arguments.volumes:
        console.detail("data kept in the app_data and backups volumes; --volumes deletes them")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m kit", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="base image + wheelhouse + webapp image")
    build.add_argument(
        "--base", help="base image to use (default: $BASE_IMAGE or python:3.12-slim)"
    )
    build.set_defaults(handler=command_build)
    up = commands.add_parser("up", help="build if needed, start a stack, wait for health")
    up.add_argument("environment", nargs="?", default="dev", choices=env_file.ENVIRONMENTS)
    up.add_argument("--no-build", action="store_true", help="use the last build record as is")
    up.set_defaults(handler=command_up)
    down = commands.add_parser("down", help="stop a stack, keeping its data")
    down.add_argument("environment", nargs="?", default="dev", choices=env_file.ENVIRONMENTS)
    down.add_argument("--volumes", action="store_true", help="also delete its volumes (data)")
    down.set_defaults(handler=command_down)
    return top


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)

    def command() -> int:
        arguments.handler(arguments)
        return 0

    return console.exit_status(command)


if __name__ == "__main__":
    sys.exit(main())
