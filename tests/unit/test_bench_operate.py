"""The operate bench's plan: which commands it times, on which environment, in which
connections; no host is needed to check it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import deploy_times, operate_times
from bench.report import OPERATE_KEYS
from harness.hosts import Host
from harness.lab import Lab
from kit.console import KitError


def test_the_bench_times_exactly_the_keys_the_report_promises() -> None:
    planned = [command.key for command in operate_times.commands("bench1")]
    assert len(planned) == len(set(planned))
    assert {*planned, "operate.status_first_s"} == set(OPERATE_KEYS)


def test_each_command_is_bounded_and_never_follows() -> None:
    by_key = {command.key: command for command in operate_times.commands("bench1")}
    logs = by_key["operate.logs_2hosts_s"]
    assert logs.two_hosts and "--follow" not in logs.args
    assert logs.args[logs.args.index("--since") + 1] == operate_times.LOGS_SINCE
    assert by_key["operate.exec_s"].args == ("exec", "--host", "bench1", "app", "true")
    assert by_key["operate.status_json_1host_s"].args == ("status", "--json")
    assert [key for key, command in by_key.items() if command.warm] == [
        "operate.status_1host_warm_s",
        "operate.status_2hosts_warm_s",
    ]


def test_a_new_connection_run_gets_a_temporary_directory_of_its_own(tmp_path: Path) -> None:
    with operate_times.connections(None) as first, operate_times.connections(None) as second:
        fresh = Path(first["TMPDIR"])
        assert fresh.is_dir() and first["TMPDIR"] != second["TMPDIR"]
        # ssh refuses a control socket path much over 100 bytes: %C adds 40 characters.
        assert len(f"{fresh}/webapp-ssh-65534/{'c' * 40}") < 90
    assert not fresh.exists()
    with operate_times.connections(tmp_path) as warm:
        assert warm["TMPDIR"] == str(tmp_path)
    assert tmp_path.is_dir()


def test_a_lab_of_one_host_is_refused_naming_what_the_bench_needs(tmp_path: Path) -> None:
    one = Host("bench1", "container", 2222, 8000)
    lab = Lab(tmp_path, tmp_path / "inventory.ini", tmp_path / "key", [one], [], "tag", tmp_path)
    with pytest.raises(KitError, match="the operate bench needs 2 test hosts, the lab has 1"):
        operate_times.inventories(lab)


def test_a_deploy_to_some_hosts_gets_an_inventory_of_them_alone(tmp_path: Path) -> None:
    first, second = Host("bench1", "c1", 2222, 8000), Host("bench2", "c2", 2223, 8001)
    lab = Lab(
        tmp_path, tmp_path / "inventory.ini", tmp_path / "key", [first, second], [], "t", tmp_path
    )
    text = deploy_times.inventory_of(lab, [second]).read_text()
    prod = text.split("[prod]\n", 1)[1].splitlines()
    assert len(prod) == 1 and prod[0].startswith("bench2 ansible_port=2223 ")
    assert "bench1" not in text
    # The controller's own group stays: the deploy's first and last plays run there.
    assert "[dev]\nlocalhost ansible_connection=local" in text
