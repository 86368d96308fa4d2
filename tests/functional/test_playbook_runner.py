"""The harness's playbook runner against a real ansible-playbook on this machine."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import playbook

PLAY = """\
- name: A play that changes one thing and fails on request
  hosts: all
  gather_facts: false
  tasks:
    - name: Say the variable.
      ansible.builtin.debug:
        msg: "marker {{ lookup('ansible.builtin.env', 'HARNESS_MARKER') }}"
    - name: Change a file.
      ansible.builtin.copy:
        content: "x\\n"
        dest: "{{ target }}"
        mode: "0600"
    - name: Fail when asked.
      ansible.builtin.fail:
        msg: "failed on purpose"
      when: fail | default(false) | bool
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.ini").write_text(
        f"here ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return tmp_path


def run(project: Path, *args: str) -> playbook.Play:
    return playbook.start(
        "play.yml", "-e", f"target={project / 'out.txt'}", *args,
        inventory=project / "inventory.ini", env={"HARNESS_MARKER": "m-4711"},
        project=project, log=project / "logs" / "play.log", timeout=120,
    ).wait()  # fmt: skip


def test_a_play_reports_its_hosts_changes_and_output(project: Path) -> None:
    first = run(project)
    assert first.returncode == 0, first.output
    assert first.changed() == {"here": 1} and first.failed() == {"here": 0}
    assert first.ran("Change a file.", role="") == {"here"}
    assert first.ran("Fail when asked.", role="") == set()
    assert "marker m-4711" in first.output and "\r" not in first.output
    assert (project / "logs" / "play.log").read_text() == first.output
    again = run(project)
    assert again.changed() == {"here": 0}


def test_a_failing_play_names_the_failed_host(project: Path) -> None:
    failed = run(project, "-e", "fail=true")
    assert failed.returncode != 0
    assert failed.failed() == {"here": 1}
    assert "failed on purpose" in failed.flat()
