"""The deploy, run for real: ansible-playbook over SSH against Docker test hosts.

The tests run in file order and build on each other, like a host's release history:
provision (Debian 13 and 12), first deploy, idempotent re-run, dry run, the parity proof
against real differences, redeploy with data, lock, broken release, and a host lost
mid-rollout. The prod hosts run Debian 13's own Compose, the controller a newer one.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness import hosts, http
from harness.commands import docker
from harness.hosts import Host
from harness.lab import Lab
from harness.playbook import bin_dir
from harness.repo import ANSIBLE_DIR, HOST_COMPOSE
from harness.traffic import MixedTraffic

pytestmark = pytest.mark.deploy
# The project name .env.prod gives the stack on every host.
PROJECT = "webapp-prod"
LOCK_TASK = "Take the deploy lock and read the host's engine, images, release and installed files."
ROLLOUT_PLAY = "Deploy the notes stack to the hosts it changes, batch by batch."


def deploy(lab: Lab, release, *args: str):
    return lab.deploy(release, *args)


def test_provision_refuses_an_unsupported_os_before_changing_anything(lab: Lab) -> None:
    bare1 = lab.bare_host("bare1")
    saved = "/etc/os-release /etc/debian_version"
    bare1.sh(f"mkdir -p /root/saved && cp {saved} /root/saved/")
    bare1.sh(
        "sed -i -e 's/^VERSION_ID=.*/VERSION_ID=\"11\"/' -e 's/^VERSION=.*/VERSION=\"11\"/'"
        " -e 's/^VERSION_CODENAME=.*/VERSION_CODENAME=bullseye/' /etc/os-release"
        " && echo 11.11 > /etc/debian_version"
    )
    try:
        run = lab.play("provision.yml", "-e", "env=bare", "--limit", "bare1")
    finally:
        bare1.sh("cp /root/saved/os-release /root/saved/debian_version /etc/")
    assert run.returncode != 0
    message = " ".join(run.output.split())
    assert "bare1 runs Debian 11" in message and "prepares Debian 12 or 13 only" in message
    assert run.changed() == {"bare1": 0}
    assert bare1.sh("command -v dockerd", check=False).returncode != 0


def test_provision_prepares_debian_13_and_12_idempotently(lab: Lab) -> None:
    first = lab.play("provision.yml", "-e", "env=bare")
    assert first.returncode == 0, first.output[-3000:]
    assert first.changed()["bare1"] > 0 and first.changed()["bare12"] > 0
    controller_compose = docker("compose", "version", "--short").stdout.strip()
    for name, compose_owner in (("bare1", "docker-compose"), ("bare12", None)):
        host = lab.bare_host(name)
        assert host.sh("systemctl is-active docker").stdout.strip() == "active"
        version = host.sh("docker compose version --short").stdout.strip()
        plugin = host.sh("docker info --format '{{json .ClientInfo.Plugins}}'").stdout
        if compose_owner is not None:
            # Debian 13: Compose v2 from Debian's own package, nothing from the controller.
            assert version != controller_compose, version
            assert "/usr/libexec/docker/cli-plugins/docker-compose" in plugin
            assert host.sh("dpkg -S /usr/libexec/docker/cli-plugins/docker-compose").stdout
        else:
            assert version == controller_compose
    again = lab.play("provision.yml", "-e", "env=bare")
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed() == {"bare1": 0, "bare12": 0}


def test_a_debian_12_server_serves_the_release_and_matches_the_build(lab: Lab, releases) -> None:
    bare12 = lab.bare_host("bare12")
    debian_12 = hosts.inventory(lab.workdir / "debian12.ini", lab.key, {"prod": [bare12]})
    run = lab.play(
        "deploy.yml", "-e", "env=prod", "-e", f"webapp_build_record={releases['v1'].path}",
        inventory=debian_12,
    )  # fmt: skip
    assert run.returncode == 0, run.output[-3000:]
    assert lab.http(bare12, "GET", "/readyz")[0] == 200
    assert lab.service_image(bare12) == releases["v1"].image_id
    rows = [line for line in run.output.splitlines() if line.strip().startswith("- bare12")]
    assert len(rows) == 1 and rows[0].rstrip().endswith("yes"), rows
    # A reboot empties the firewall: the unit the deploy enabled puts the connection cap
    # back when Docker starts.
    assert bare12.sh("systemctl is-enabled webapp-client-cap").stdout.strip() == "enabled"
    state = "sh /opt/webapp/client-cap.sh state"
    in_force = bare12.sh(state).stdout.strip()
    assert in_force != "client-cap none", in_force
    bare12.sh(
        "systemctl stop docker.socket docker && iptables -F DOCKER-USER"
        " && iptables -F WEBAPP-CLIENT-CAP && iptables -X WEBAPP-CLIENT-CAP"
    )
    assert bare12.sh(state).stdout.strip() == "client-cap none"
    bare12.sh("systemctl start docker")
    for _ in range(50):
        if bare12.sh(state).stdout.strip() == in_force:
            break
        time.sleep(0.2)
    assert bare12.sh(state).stdout.strip() == in_force


def test_unknown_environment_is_refused_before_any_host_is_contacted(lab: Lab, releases) -> None:
    run = deploy(lab, releases["v1"], "-e", "env=staging")
    assert run.returncode != 0
    message = " ".join(run.output.split())
    assert "env=staging is not an environment of this project; use one of: dev, prod" in message
    assert "web1" not in run.output and "web2" not in run.output


def test_first_deploy_serves_on_every_host_and_matches_the_build(lab: Lab, releases) -> None:
    run = deploy(lab, releases["v1"])
    assert run.returncode == 0, run.output[-3000:]
    (lab.workdir / "first-deploy.log").write_text(run.output)
    for host in lab.prod:
        status, page = lab.http(host, "GET", "/api/notes")
        assert status == 200 and page["items"] == []
        assert lab.service_image(host) == releases["v1"].image_id
        # From outside the server, on port 80 with the repository's .env.prod as it is:
        # through the proxy, which publishes on all of the server's interfaces.
        assert host.public_port is not None
        outside = http.once(host.public_port, "GET", "/api/notes")
        assert outside.status == 200 and outside.json()["items"] == []
        assert "Caddy" in outside.headers["Via"]
        modes = host.sh(
            "stat -c '%U %a %n' /opt/webapp/.env.prod /opt/webapp/compose/compose.yaml; "
            "stat -c '%u %a %n' /opt/webapp/secrets/secret_key"
        ).stdout.split("\n")
        assert modes[:3] == [
            "root 600 /opt/webapp/.env.prod",
            "root 600 /opt/webapp/compose/compose.yaml",
            "10001 600 /opt/webapp/secrets/secret_key",
        ]
        audit = host.sh("cat /opt/webapp/audit.log").stdout
        assert lab.secret not in audit and releases["v1"].image_id in audit
    assert lab.secret not in run.output
    rows = [line for line in run.output.splitlines() if line.strip().startswith("- web")]
    assert len(rows) == 2 and all(row.rstrip().endswith("yes") for row in rows), rows
    verify = lab.play(
        "verify.yml", "-e", "env=prod", "-e", f"webapp_build_record={releases['v1'].path}"
    )
    assert verify.returncode == 0, verify.output[-3000:]
    assert verify.changed() == {"localhost": 0, "web1": 0, "web2": 0}


def test_a_rerun_with_nothing_changed_reports_no_change(lab: Lab, releases) -> None:
    run = deploy(lab, releases["v1"])
    assert run.returncode == 0, run.output[-3000:]
    assert run.changed() == {"localhost": 0, "web1": 0, "web2": 0}
    assert run.shipped() == []
    # Nothing differs, so nothing is sent and compose is not asked to bring anything up.
    for task in (
        "Install the compose files.",
        "Install the env file.",
        "Install the secret key.",
        "Bring the release up health first, detached from the SSH session.",
    ):
        assert run.ran(task) == set(), task
    # Both hosts were surveyed at once, checked and fingerprinted there, and the rollout
    # had nothing to do on either.
    assert run.ran(LOCK_TASK) == {"web1", "web2"}
    assert run.ran(
        "Verify from the host that the app is ready, and read the build it reports."
    ) == {
        "web1",
        "web2",
    }
    assert run.ran("Release the deploy lock of a host the rollout will take again.") == set()
    assert run.ran("Note the host's fingerprint and the expected one.") == {"web1", "web2"}
    for host in lab.prod:
        assert host.sh("test -d /opt/webapp/deploy.lock", check=False).returncode != 0


def test_a_rerun_repairs_a_stopped_service_and_edited_files(lab: Lab, releases) -> None:
    web1, web2 = lab.prod
    web1.sh("cd /opt/webapp && docker compose --env-file .env.prod stop app")
    web2.sh(
        "echo '# edited by hand' >> /opt/webapp/.env.prod"
        " && chmod 644 /opt/webapp/compose/compose.yaml"
    )
    run = deploy(lab, releases["v1"])
    assert run.returncode == 0, run.output[-3000:]
    changed = run.changed()
    assert changed["web1"] > 0 and changed["web2"] > 0, changed
    assert run.ran("Bring the release up health first, detached from the SSH session.") == {
        "web1",
        "web2",
    }
    assert run.ran("Install the compose files.") == {"web2"}
    assert lab.http(web1, "GET", "/readyz")[0] == 200
    assert "edited by hand" not in web2.sh("cat /opt/webapp/.env.prod").stdout
    assert web2.sh("stat -c %a /opt/webapp/compose/compose.yaml").stdout.strip() == "600"
    again = deploy(lab, releases["v1"])
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed() == {"localhost": 0, "web1": 0, "web2": 0}


def test_check_mode_shows_the_redeploy_and_changes_nothing(lab: Lab, releases) -> None:
    before = [
        host.sh("cat /opt/webapp/releases.json /opt/webapp/.env.prod").stdout for host in lab.prod
    ]
    run = deploy(lab, releases["v2"], "--check", "--diff")
    assert run.returncode == 0, run.output[-3000:]
    assert all(count > 0 for host, count in run.changed().items() if host != "localhost")
    assert f"WEBAPP_IMAGE={releases['v2'].image}" in run.output  # the --diff of the env file
    for host, earlier in zip(lab.prod, before, strict=True):
        assert host.sh("cat /opt/webapp/releases.json /opt/webapp/.env.prod").stdout == earlier
        assert lab.service_image(host) == releases["v1"].image_id
        missing = host.sh(f"docker image inspect {releases['v2'].image}", check=False)
        assert missing.returncode != 0


def _answered(clients: list[http.Client]) -> list[bool]:
    """Whether each client's kept-alive connection got an answer to one request."""
    answers = []
    for client in clients:
        try:
            answers.append(client.send("GET", "/readyz").status == 200)
        except http.UNREACHABLE:
            answers.append(False)
    return answers


def test_a_client_address_holds_no_more_connections_than_the_cap(lab: Lab, releases) -> None:
    web1 = lab.prod[0]
    assert web1.public_port is not None
    cap = 4
    capped = deploy(lab, releases["v1"], "-e", f"webapp_conns_per_client={cap}")
    assert capped.returncode == 0, capped.output[-3000:]
    assert capped.ran("Apply the connection cap to the host's firewall.") == {"web1", "web2"}
    assert capped.ran("Bring the release up health first, detached from the SSH session.") == set()
    # Every request of this test comes from one address, as a slowloris attacker's would.
    held = [http.Client(web1.public_port, timeout=5) for _ in range(cap)]
    try:
        assert _answered(held) == [True] * cap
        over = http.Client(web1.public_port, timeout=5)
        assert _answered([over]) == [False]
        over.close()
        held.pop().close()
        # A closed connection no longer counts; give the close a moment to be seen.
        admitted = False
        for _ in range(20):
            probe = http.Client(web1.public_port, timeout=5)
            admitted = _answered([probe]) == [True]
            probe.close()
            if admitted:
                break
            time.sleep(0.1)
        assert admitted, "a connection below the cap was refused"
    finally:
        for client in held:
            client.close()
    again = deploy(lab, releases["v1"], "-e", f"webapp_conns_per_client={cap}")
    assert again.returncode == 0, again.output[-3000:]
    assert again.changed() == {"localhost": 0, "web1": 0, "web2": 0}
    # Back to the default, far above what this test opens.
    default = deploy(lab, releases["v1"])
    assert default.returncode == 0, default.output[-3000:]
    assert default.ran("Apply the connection cap to the host's firewall.") == {"web1", "web2"}
    more = [http.Client(web1.public_port, timeout=5) for _ in range(cap + 2)]
    try:
        assert _answered(more) == [True] * (cap + 2)
    finally:
        for client in more:
            client.close()


def _verify(lab: Lab, release) -> str:
    run = lab.play("verify.yml", "-e", "env=prod", "-e", f"webapp_build_record={release.path}")
    assert run.returncode != 0, "verify passed although a host differs from the build"
    return " ".join(run.output.split())


@contextmanager
def _edited(host: Host, path: str, edit: str) -> Iterator[None]:
    """PATH on HOST changed by the shell command EDIT (given PATH as its last word), and
    put back afterwards."""
    host.sh(f"cp {path} /root/edited.orig && {edit} {path}")
    try:
        yield
    finally:
        host.sh(f"cp /root/edited.orig {path}")


def test_the_parity_proof_fails_on_every_real_difference(lab: Lab, releases) -> None:
    web1, web2 = lab.prod
    controller = docker("compose", "version", "--short").stdout.strip()
    assert web1.sh("docker compose version --short").stdout.strip() != controller
    built = f"Hosts differ from the local build {releases['v1'].image}:"
    # An edited compose file.
    with _edited(web1, "/opt/webapp/compose/compose.yaml", "echo '# edited by hand' >>"):
        assert f"{built} web1 (compose_files)" in _verify(lab, releases["v1"])
    # A changed env value in the file: the containers no longer follow it either.
    with _edited(web2, "/opt/webapp/.env.prod", "sed -i 's/^LOG_LEVEL=.*/LOG_LEVEL=DEBUG/'"):
        assert f"{built} web2 (env_file, containers)" in _verify(lab, releases["v1"])
    # A changed env value in the running container only, the files untouched.
    web2.sh("cd /opt/webapp && LOG_LEVEL=DEBUG docker compose --env-file .env.prod up -d app")
    assert f"{built} web2 (containers)" in _verify(lab, releases["v1"])
    # Another image.
    web1.sh(
        f"printf 'FROM {releases['v1'].image}\\nLABEL edited=by-hand\\n'"
        " | DOCKER_BUILDKIT=0 docker build -q -t webapp:by-hand - >/dev/null"
        " && cd /opt/webapp"
        " && WEBAPP_IMAGE=webapp:by-hand docker compose --env-file .env.prod up -d app"
    )
    assert f"{built} web1 (image_id, containers)" in _verify(lab, releases["v1"])
    # The next deploy puts both back, and the proof holds again.
    run = deploy(lab, releases["v1"])
    assert run.returncode == 0, run.output[-3000:]
    rows = [line for line in run.output.splitlines() if line.strip().startswith("- web")]
    assert len(rows) == 2 and all(row.rstrip().endswith("yes") for row in rows), rows
    web1.sh("docker image rm webapp:by-hand", check=False)


def test_notes_survive_a_redeploy_of_a_new_build(lab: Lab, releases) -> None:
    written = {}
    for host in lab.prod:
        titles = [f"{host.name} note {n}" for n in range(5)]
        for title in titles:
            assert lab.http(host, "POST", "/api/notes", {"title": title, "body": "kept"})[0] == 201
        written[host.name] = sorted(titles)
    run = deploy(lab, releases["v2"])
    assert run.returncode == 0, run.output[-3000:]
    (lab.workdir / "code-change.log").write_text(run.output)
    full_size = int(docker("image", "inspect", "-f", "{{.Size}}", releases["v2"].image).stdout)
    assert len(run.shipped()) == 2 and all(n <= 0.1 * full_size for n in run.shipped()), (
        run.shipped()
    )
    for host in lab.prod:
        assert lab.service_image(host) == releases["v2"].image_id
        page = lab.http(host, "GET", "/api/notes?limit=100")[1]
        assert sorted(note["title"] for note in page["items"]) == written[host.name]
        backups = host.sh(
            "cd /opt/webapp && docker compose --env-file .env.prod exec -T sqlite ls /backups"
        )
        assert backups.stdout.strip(), "no pre-deploy backup was taken"


def test_rollback_switches_back_under_traffic_without_shipping_an_image(
    lab: Lab, releases
) -> None:
    web1 = lab.prod[0]
    assert web1.public_port is not None
    proxy = f"docker inspect --format '{{{{.Id}}}}' {PROJECT}-proxy-1"
    proxy_before = web1.sh(proxy).stdout
    with MixedTraffic(web1.public_port) as traffic:
        play = lab.rollback(releases["v2"])
    assert play.returncode == 0, play.output[-3000:]
    assert "Ship the image" not in play.output
    assert traffic.record.requests > 50, traffic.record
    assert traffic.record.failed == 0, traffic.record.failures
    tally = web1.sh(f'{HOST_COMPOSE} exec -T sqlite sqlite3 /data/app.db "{traffic.tally_sql()}"')
    assert traffic.lost_or_doubled(tally.stdout) == []
    for host in lab.prod:
        assert lab.service_image(host) == releases["v1"].image_id
    # Through the same proxy: the rollback switched slots behind it.
    assert web1.sh(proxy).stdout == proxy_before
    last = json.loads(web1.sh("tail -n 1 /opt/webapp/audit.log").stdout)
    assert last["result"] == "rolled back by hand"


def test_a_concurrent_deploy_is_refused_by_the_lock(lab: Lab, releases) -> None:
    # A stopped proxy gives the first deploy a repair to make, so it takes web1's lock
    # again for its rollout, and holds it through a release.
    lab.prod[0].sh(f"{HOST_COMPOSE} stop proxy")
    rolling_out = threading.Event()

    def note_web1_s_rollout_lock(event: dict[str, Any]) -> None:
        data = event.get("event_data", {})
        if (
            event.get("event") == "runner_on_ok"
            and data.get("host") == "web1"
            and data.get("play") == ROLLOUT_PLAY
            and data.get("task") == LOCK_TASK
        ):
            rolling_out.set()

    first = lab.start(
        "deploy.yml", *lab.deploy_args(releases["v1"]), label="deploy-first",
        on_event=note_web1_s_rollout_lock,
    )  # fmt: skip
    try:
        if not rolling_out.wait(timeout=300):
            pytest.fail("the first deploy never took web1's lock for its rollout")
        second = deploy(lab, releases["v1"])
    finally:
        first_play = first.wait(timeout=600)
    assert first_play.returncode == 0, first_play.output[-3000:]
    assert second.returncode != 0
    message = " ".join(second.output.split())
    assert "web1 is locked by another deploy:" in message
    assert f"deploying {releases['v1'].image}" in message
    assert "remove /opt/webapp/deploy.lock on web1" in message
    # Refused at the survey: the second deploy changed no host.
    assert "Not deploying: the survey failed on web1" in message
    assert lab.prod[0].sh("test -d /opt/webapp/deploy.lock", check=False).returncode != 0


def test_a_broken_release_is_rolled_back_by_itself(lab: Lab, releases) -> None:
    web1, web2 = lab.prod
    notes_before = lab.http(web1, "GET", "/api/notes?limit=100")[1]["items"]
    run = deploy(lab, releases["broken"])
    assert run.returncode != 0
    message = " ".join(run.output.split())
    assert f"Deploy of {releases['broken'].image} to web1 FAILED at" in message
    assert f"ROLLED BACK to {releases['v1'].image}, which answers /readyz with 200" in message
    assert lab.service_image(web1) == releases["v1"].image_id
    assert lab.http(web1, "GET", "/readyz")[0] == 200
    assert lab.http(web1, "GET", "/api/notes?limit=100")[1]["items"] == notes_before
    # The rollout stopped at the first failure: web2 was never touched.
    assert lab.service_image(web2) == releases["v1"].image_id
    assert releases["broken"].image not in web2.sh("cat /opt/webapp/audit.log").stdout
    last = json.loads(web1.sh("tail -n 1 /opt/webapp/audit.log").stdout)
    assert last["result"] == f"failed, rolled back to {releases['v1'].image}"


def test_a_crash_looping_release_is_caught_by_its_restarts_and_rolled_back(
    lab: Lab, releases
) -> None:
    web1, web2 = lab.prod
    notes_before = lab.http(web1, "GET", "/api/notes?limit=100")[1]["items"]
    run = deploy(lab, releases["crashing"])
    assert run.returncode != 0
    message = " ".join(run.output.split())
    # Caught by its restart count, not by the wait timeout (which would say "not healthy
    # within").
    # The new release's app never left its stand-in slot: the old one served throughout.
    assert "web1: service app_next crash-loops: restarted" in message, message[-2000:]
    assert "not healthy within" not in message
    assert f"ROLLED BACK to {releases['v1'].image}, which answers /readyz with 200" in message
    assert lab.service_image(web1) == releases["v1"].image_id
    assert lab.http(web1, "GET", "/api/notes?limit=100")[1]["items"] == notes_before
    assert lab.service_image(web2) == releases["v1"].image_id


def test_a_host_the_survey_cannot_reach_stops_the_deploy_before_any_change(
    lab: Lab, releases
) -> None:
    web2 = lab.prod[1]
    docker("pause", web2.container)
    try:
        run = deploy(lab, releases["v2"])
    finally:
        docker("unpause", web2.container)
    assert run.returncode != 0
    assert "UNREACHABLE" in run.output
    assert (
        "Not deploying: the survey failed on web2 (see above); no host was changed."
        in " ".join(run.output.split())
    )
    assert run.ran("Bring the release up health first, detached from the SSH session.") == set()
    for host in lab.prod:
        assert lab.service_image(host) == releases["v1"].image_id
        assert host.sh("test -d /opt/webapp/deploy.lock", check=False).returncode != 0


def test_a_host_lost_mid_rollout_fails_the_play_and_leaves_consistent_releases(
    lab: Lab, releases
) -> None:
    web1, web2 = lab.prod
    paused: list[str] = []

    def lose_web2_once_web1_is_released(event: dict[str, Any]) -> None:
        data = event.get("event_data", {})
        if (
            not paused
            and event.get("event") == "runner_on_ok"
            and data.get("host") == "web1"
            and data.get("task") == "Wait until the release is up and healthy."
        ):
            docker("pause", web2.container)
            paused.append("web2")

    try:
        run = lab.start(
            "deploy.yml",
            *lab.deploy_args(releases["v2"]),
            label="deploy-v2-host-lost",
            on_event=lose_web2_once_web1_is_released,
        ).wait(timeout=600)
    finally:
        if paused:
            docker("unpause", web2.container)
    assert paused == ["web2"], "web1's release never came up"
    assert run.returncode != 0
    assert "UNREACHABLE" in run.output and "web2" in run.output
    # Each host runs one whole release: web1 the new one, web2 the one it had.
    assert lab.service_image(web1) == releases["v2"].image_id
    assert lab.http(web1, "GET", "/readyz")[0] == 200
    assert lab.service_image(web2) == releases["v1"].image_id
    assert lab.http(web2, "GET", "/readyz")[0] == 200
    verify = lab.play(
        "verify.yml", "-e", "env=prod", "-e", f"webapp_build_record={releases['v2'].path}"
    )
    assert verify.returncode != 0
    assert f"Hosts differ from the local build {releases['v2'].image}: web2 (image_id" in " ".join(
        verify.output.split()
    )


def test_playbooks_pass_ansible_lint_and_yamllint() -> None:
    lint = subprocess.run(
        [str(bin_dir() / "ansible-lint"), "--profile", "production"],
        cwd=ANSIBLE_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-3000:]
    yaml = subprocess.run(
        [str(bin_dir() / "yamllint"), "--strict", "."],
        cwd=ANSIBLE_DIR.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert yaml.returncode == 0, yaml.stdout
