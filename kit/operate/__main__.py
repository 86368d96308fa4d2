"""`python -m kit.operate VERB ENV ...`: look at and act on an environment's servers.

The nox sessions status, logs, exec, shell, audit, rollback, backup and restore call
this; each verb is a module of this package. Hosts come from the inventory as Ansible
reads it (ansible.cfg, ANSIBLE_INVENTORY, or `-i`). Exit 0 when all is well, 1 when a
host is unreachable or unhealthy (named on stderr), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from kit import console
from kit.console import KitError
from kit.operate import audit, execute, inventory, logs, playbooks, status

BACKUP_PREFIX = "/backups/app-"


def command_status(arguments: argparse.Namespace) -> int:
    began = time.monotonic()
    hosts = inventory.select(
        inventory.environment_hosts(arguments.env, arguments.inventory), arguments.host
    )
    statuses = status.collect(hosts, arguments.env)
    print(status.as_json(statuses) if arguments.json else status.table(statuses))
    problems = [problem for s in statuses for problem in s.problems]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    took = time.monotonic() - began
    faulty = sum(1 for s in statuses if s.problems)
    verdict = f"{faulty} of {len(statuses)} with problems" if faulty else "all healthy"
    console.detail(f"{len(statuses)} host(s) of {arguments.env}: {verdict}, in {took:.1f} s")
    return 1 if problems else 0


def command_logs(arguments: argparse.Namespace) -> int:
    hosts = inventory.select(
        inventory.environment_hosts(arguments.env, arguments.inventory), arguments.host
    )
    options = logs.Options(
        arguments.env, arguments.services, arguments.since, arguments.follow, arguments.grep
    )
    return logs.stream(hosts, options)


def _one_host(arguments: argparse.Namespace) -> inventory.Host:
    found = inventory.environment_hosts(arguments.env, arguments.inventory)
    return inventory.select(found, arguments.host)[0]


def command_exec(arguments: argparse.Namespace) -> int:
    if not arguments.argv:
        raise UsageError("name the command to run after the service, e.g. `app python -V`")
    return execute.run(_one_host(arguments), arguments.env, arguments.service, arguments.argv)


def command_shell(arguments: argparse.Namespace) -> int:
    return execute.shell(_one_host(arguments), arguments.env)


def command_audit(arguments: argparse.Namespace) -> int:
    hosts = inventory.environment_hosts(arguments.env, arguments.inventory)
    found = audit.entries(hosts, arguments.last)
    print(json.dumps(found, indent=2) if arguments.json else audit.table(found))
    return 0


def command_rollback(arguments: argparse.Namespace) -> int:
    extra = {"webapp_rollback_to": arguments.to} if arguments.to else {}
    return playbooks.run("rollback.yml", arguments.env, extra, arguments.ansible)


def command_backup(arguments: argparse.Namespace) -> int:
    return playbooks.run(
        "backup.yml", arguments.env, {"target": arguments.host}, arguments.ansible
    )


def command_restore(arguments: argparse.Namespace) -> int:
    if not arguments.backup.startswith(BACKUP_PREFIX):
        raise UsageError(
            f"BACKUP must be a file of the host's backups volume, {BACKUP_PREFIX}"
            "YYYYmmddTHHMMSSZ.db; `nox -s exec -- ENV --host H sqlite ls /backups` lists them"
        )
    extra = {"target": arguments.host, "backup": arguments.backup}
    return playbooks.run("restore.yml", arguments.env, extra, arguments.ansible)


class UsageError(KitError):
    """Arguments that parse but make no sense together."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m kit.operate", description=__doc__.splitlines()[0]
    )
    verbs = top.add_subparsers(dest="verb", required=True)

    def verb(
        name: str, handler: object, summary: str, *, host: str = "none"
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, prog=f"nox -s {name} --", help=summary, description=summary)
        sub.add_argument("env", metavar="ENV", help="the inventory group, e.g. prod")
        sub.add_argument("-i", "--inventory", help="an inventory instead of ansible.cfg's")
        if host == "one":
            sub.add_argument("--host", required=True, metavar="H", help="the host")
        elif host == "any":
            sub.add_argument("--host", metavar="H", help="only this host")
        sub.set_defaults(handler=handler)
        return sub

    sub = verb(
        "status",
        command_status,
        "each host's release, health, schema, space, backup, lock",
        host="any",
    )
    sub.add_argument("--json", action="store_true", help="for scripts")
    sub = verb("logs", command_logs, "the services' log lines from every host", host="any")
    sub.add_argument("services", nargs="*", metavar="SERVICE", help="only these services")
    sub.add_argument("--since", metavar="WHEN", help="e.g. 10m or 2026-12-02T16:00:00Z")
    sub.add_argument("--follow", action="store_true", help="keep streaming")
    sub.add_argument("--grep", metavar="TEXT", help="only lines holding TEXT")
    sub = verb("exec", command_exec, "a command in a service of one host", host="one")
    sub.add_argument("service", metavar="SERVICE", help="sqlite or app")
    sub.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD", help="the command")
    verb("shell", command_shell, "the SQLite shell on one host's live database", host="one")
    sub = verb("audit", command_audit, "the last deploys from each host's audit log")
    sub.add_argument("--last", type=int, default=10, metavar="N", help="entries per host (10)")
    sub.add_argument("--json", action="store_true", help="for scripts")
    sub = verb("rollback", command_rollback, "each host back to its previous release")
    sub.add_argument(
        "--to", metavar="IMAGE", help="a kept release instead, e.g. webapp:0.1.0-abc1234"
    )
    sub = verb("backup", command_backup, "an online backup of one host, fetched here", host="one")
    sub = verb(
        "restore", command_restore, "one host's database from a backup on its volume", host="one"
    )
    sub.add_argument("backup", metavar="BACKUP", help="/backups/app-YYYYmmddTHHMMSSZ.db")
    for name in ("rollback", "backup", "restore"):
        verbs.choices[name].add_argument(
            "ansible",
            nargs=argparse.REMAINDER,
            metavar="...",
            help="more ansible-playbook arguments",
        )
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    arguments, extra = top.parse_known_args(argv)
    # argparse gives a list of positionals only the words before the first option, so
    # `logs prod -i hosts.ini app` leaves `app` over: it is a service all the same.
    if arguments.verb == "logs" and not any(word.startswith("-") for word in extra):
        arguments.services += extra
    elif extra:
        top.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return console.exit_status(
            lambda: arguments.handler(arguments), failures=(UsageError,), failure_status=2
        )
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
