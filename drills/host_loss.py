"""A server lost without warning, and a new one brought up from its off-host replica.

The first SSH test host replicates over SFTP to an SFTP-only server (harness.sftp_target)
and takes notes through its public port (the proxy's) from a writer that remembers when
each note was acknowledged. The drill waits for one replicator beat that the remote
confirmed, then, with the writer still going, kills the whole server: its container
(sshd, Docker engine and stack at once) is SIGKILLed and removed with its volumes, so the
stack, the data volumes and the app directory are gone. A second test host takes its
place in the inventory with the same REPLICA_URL, and a plain `deploy.yml` brings it up;
`db serve` restores the replica before it migrates.

Every note acknowledged before that confirmed beat began must be on the new server,
exactly once, and nothing acknowledged more than LOST_WINDOW_MAX_MS before the loss may
be missing (replication is asynchronous: the last moments may be). Then the new server
takes notes in turn and is shut down cleanly before it is removed, and a third server
recovers from the replica: after a clean shutdown not one acknowledged note may be lost.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from drills import host_lab
from drills.outcome import DrillContext, DrillOutcome
from harness import hosts, http, sftp_target
from harness.commands import docker
from harness.hosts import Host
from harness.lab import Lab
from harness.repo import HOST_COMPOSE
from kit import console

# Seconds of writes before the drill asks for its confirmed sync (then writes go on
# until the server dies), and a bound on how many notes the writer makes.
WRITE_S = {True: 8.0, False: 30.0}
MAX_NOTES = {True: 5_000, False: 20_000}
# The replicator's state, beside the database on the data volume (webapp.ops.replica).
STATUS_FILE = "/data/.app.db-replica.json"
# Bounds for the waits: a sync is confirmed every heartbeat (5 s); a note is a request.
SYNC_WAIT_S = 60
REQUEST_TIMEOUT_S = 5.0
REPLICA_DIRECTORY = "hostloss"
# The bound: a hard loss may lose only what was acknowledged this close to it.
LOST_WINDOW_MAX_MS = 2000
# The figures that count the notes written so far, which bound a full listing.
WRITTEN_KEYS = ("acknowledged", "graceful_acknowledged")


@dataclass(frozen=True)
class Acknowledged:
    """A note the server answered 201 for, and when (epoch seconds) the answer came."""

    title: str
    at: float


@dataclass
class Tally:
    """What came back of the acknowledged notes, split at the confirmed sync."""

    covered: int  # acknowledged before the confirmed sync began: must all be there
    lost: int  # of those, missing on the new server
    duplicated: int  # of those, there more than once
    after: int  # acknowledged after the sync began: replication may not have shipped them
    after_kept: int  # of those, there anyway


def confirmed_at(status_text: str) -> float | None:
    """When the beat that the remote last confirmed began, from the status file."""
    try:
        value = json.loads(status_text).get("confirmed_at")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def tally(acknowledged: list[Acknowledged], synced: float, titles: list[str]) -> Tally:
    """Judge the new server's note TITLES against the notes acknowledged before SYNCED.

    The remote held every transaction committed before the confirmed beat began, and a
    note is committed before its answer leaves the server: so each note acknowledged
    before SYNCED is in the replica."""
    counts: dict[str, int] = {}
    for title in titles:
        counts[title] = counts.get(title, 0) + 1
    covered = [note for note in acknowledged if note.at < synced]
    after = [note for note in acknowledged if note.at >= synced]
    return Tally(
        covered=len(covered),
        lost=sum(1 for note in covered if note.title not in counts),
        duplicated=sum(1 for note in covered if counts.get(note.title, 0) > 1),
        after=len(after),
        after_kept=sum(1 for note in after if note.title in counts),
    )


def lost_window(
    acknowledged: list[Acknowledged], titles: list[str], lost_at: float
) -> tuple[int, int]:
    """How many acknowledged notes the new server lacks, and how long before LOST_AT the
    oldest of them was acknowledged, in ms (0 when none is missing)."""
    present = set(titles)
    missing = [note.at for note in acknowledged if note.title not in present]
    if not missing:
        return 0, 0
    return len(missing), max(0, round((lost_at - min(missing)) * 1000))


def directory_bytes(du_output: str) -> int | None:
    """The size `du -sb DIR` reports, or None if it printed no size."""
    first = du_output.split()[:1]
    return int(first[0]) if first and first[0].isdigit() else None


@dataclass
class Writer:
    """Notes posted one after another to a server's public port, until told to stop."""

    port: int
    prefix: str
    limit: int
    acknowledged: list[Acknowledged] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_S * 2)

    def _write(self) -> None:
        for number in range(self.limit):
            if self._stop.is_set():
                return
            title = f"{self.prefix} {number}"
            body = {"title": title, "body": "written before the server was lost", "tags": []}
            status, _ = http.json_request(
                self.port, "POST", "/api/notes", body, timeout=REQUEST_TIMEOUT_S
            )
            if status == 201:
                self.acknowledged.append(Acknowledged(title, time.time()))
            else:
                self.refused += 1
                time.sleep(0.05)


def all_titles(port: int, pages: int) -> list[str] | None:
    """Every note's title the server lists, page by page; None when listing fails."""
    titles: list[str] = []
    path = "/api/notes?limit=100"
    for _ in range(pages):
        status, page = http.json_request(port, "GET", path, timeout=30)
        if status != 200 or not page:
            return None
        titles += [item["title"] for item in page["items"]]
        if page.get("next_cursor") is None:
            return titles
        path = f"/api/notes?limit=100&cursor={urllib.parse.quote(page['next_cursor'])}"
    return None


def lose(host: Host) -> None:
    """The server dies at once and its disks go with it."""
    docker("kill", host.container, check=False)
    hosts.stop_all([host])


class HostLoss:
    def __init__(self, context: DrillContext, lab: Lab, outcome: DrillOutcome) -> None:
        self.context = context
        self.lab = lab
        self.outcome = outcome
        self.old, self.new, self.third = lab.hosts[0], lab.hosts[1], lab.hosts[2]

    def inventory(self, host: Host, target: sftp_target.SftpTarget, url: str) -> Path:
        return hosts.inventory(
            self.context.scratch / f"{host.name}.ini", self.lab.key, {"prod": [host]},
            {"REPLICA_URL": url, "WEBAPP_REPLICA_HOST_KEY": target.host_key},
        )  # fmt: skip

    def status(self, host: Host) -> str:
        return self.lab.sh(host, f"{HOST_COMPOSE} exec -T sqlite cat {STATUS_FILE}")

    def confirmed_after(self, host: Host, mark: float) -> float | None:
        """Wait for a beat begun after MARK and confirmed; when it began."""
        deadline = time.monotonic() + SYNC_WAIT_S
        while time.monotonic() < deadline:
            synced = confirmed_at(self.status(host))
            if synced is not None and synced > mark:
                return synced
            time.sleep(0.5)
        return None

    def run(self, target: sftp_target.SftpTarget, address: str) -> None:
        outcome, lab = self.outcome, self.lab
        url = f"sftp://{sftp_target.USER}@{address}{sftp_target.HOME}/{REPLICA_DIRECTORY}"
        with console.step(f"Deploying {self.old.name}, replicating to the SFTP server"):
            first = lab.play(
                "deploy.yml", *lab.deploy_args(lab.releases["v1"]),
                inventory=self.inventory(self.old, target, url), label="deploy-first",
            )  # fmt: skip
        if not outcome.check(first.returncode == 0, f"the first deploy failed; see {first.log}"):
            return
        assert self.old.public_port is not None and self.new.public_port is not None
        writer = Writer(
            self.old.public_port,
            f"host-loss {uuid.uuid4().hex[:8]}",
            MAX_NOTES[self.context.quick],
        )
        with console.step(f"Writing notes through {self.old.name}'s public port"):
            writer.start()
            time.sleep(WRITE_S[self.context.quick])
            synced = self.confirmed_after(self.old, time.time())
        if synced is None:
            writer.stop()
            outcome.fail(
                f"{self.old.name} confirmed no replica sync within {SYNC_WAIT_S} s: "
                f"{self.status(self.old)[-300:]!r}"
            )
            return
        with console.step(f"Losing {self.old.name}: killed, its volumes and app dir gone"):
            lost_at = time.time()
            lose(self.old)
            writer.stop()
        acknowledged = list(writer.acknowledged)
        outcome.figures["host_loss.acknowledged"] = len(acknowledged)
        titles = self.recover(self.new, target, url, "deploy-recover", "rto_s")
        if titles is None:
            return
        mine = [t for t in titles if t.startswith(writer.prefix)]
        result = tally(acknowledged, synced, mine)
        lost, window_ms = lost_window(acknowledged, mine, lost_at)
        outcome.figures.update(
            {
                "host_loss.lost": lost,
                "host_loss.lost_window_ms": window_ms,
                "host_loss.notes_covered": result.covered,
                "host_loss.notes_lost": result.lost,
                "host_loss.notes_duplicated": result.duplicated,
                "host_loss.notes_after_sync": result.after,
                "host_loss.notes_after_sync_kept": result.after_kept,
            }
        )
        outcome.check(
            result.lost == 0,
            f"{result.lost} of {result.covered} notes acknowledged before the confirmed sync "
            "are missing on the new server",
        )
        outcome.check(
            result.duplicated == 0, f"{result.duplicated} notes are on the new server twice"
        )
        outcome.check(
            window_ms <= LOST_WINDOW_MAX_MS,
            f"{lost} acknowledged notes are missing, the oldest acknowledged {window_ms} ms "
            f"before the loss (bound {LOST_WINDOW_MAX_MS} ms)",
        )
        # The new server carries the replica on: it confirms syncs of its own.
        outcome.check(
            self.confirmed_after(self.new, time.time()) is not None,
            f"{self.new.name} confirmed no replica sync after the recovery",
        )
        size = directory_bytes(target.sh(f"du -sb {sftp_target.HOME}/{REPLICA_DIRECTORY}"))
        if size is not None:
            outcome.figures["host_loss.replica_bytes"] = size
        outcome.notes.append(
            f"{len(acknowledged)} notes acknowledged ({writer.refused} refused or cut off), "
            f"{result.covered} before the confirmed sync; after it {result.after}, of which "
            f"{result.after_kept} came back; the recovery deploy shipped the whole image "
            f"to a new server and took {outcome.figures['host_loss.rto_s']:.0f} s"
        )
        self.graceful(target, url)

    def recover(
        self, host: Host, target: sftp_target.SftpTarget, url: str, label: str, rto_key: str
    ) -> list[str] | None:
        """Deploy HOST in the lost server's place; its note titles, None when it failed.
        The deploy's time, from its start to serving, is the figure RTO_KEY."""
        lab, outcome = self.lab, self.outcome
        with console.step(f"Deploying {host.name} in its place, same REPLICA_URL"):
            recovered = lab.play(
                "deploy.yml", *lab.deploy_args(lab.releases["v1"]),
                inventory=self.inventory(host, target, url), label=label,
            )  # fmt: skip
        outcome.figures[f"host_loss.{rto_key}"] = round(recovered.seconds, 1)
        if recovered.returncode != 0:
            # The stack's own account of it, kept beside the play's log.
            logs = lab.sh(host, f"{HOST_COMPOSE} logs --no-color sqlite")
            kept = lab.logs / f"sqlite-after-{label}.log"
            kept.write_text(logs + "\n" + target.sh(f"ls -lR {sftp_target.HOME}"))
            # The replica itself, to restore and examine by hand.
            docker("cp", f"{target.container}:{sftp_target.HOME}/{REPLICA_DIRECTORY}",
                   str(lab.logs / f"replica-{label}"), check=False)  # fmt: skip
            last = logs.strip().splitlines()[-1:] or ["(no sqlite log)"]
            outcome.fail(
                f"the deploy to {host.name} failed; see {recovered.log} and {kept}: {last[0]}"
            )
            return None
        logs = lab.sh(host, f"{HOST_COMPOSE} logs sqlite")
        outcome.check(
            '"replica_start": "restored"' in logs,
            f"{host.name}'s sqlite service did not say it restored the replica",
        )
        assert host.public_port is not None
        written = [self.outcome.figures.get(f"host_loss.{key}", 0) for key in WRITTEN_KEYS]
        titles = all_titles(host.public_port, pages=sum(int(n) for n in written) // 100 + 10)
        outcome.check(titles is not None, f"{host.name} could not list its notes")
        return titles

    def graceful(self, target: sftp_target.SftpTarget, url: str) -> None:
        """The recovered server takes notes, is shut down cleanly, and is removed; the
        third server recovers every note it acknowledged."""
        assert self.new.public_port is not None
        writer = Writer(
            self.new.public_port, f"graceful {uuid.uuid4().hex[:8]}", MAX_NOTES[self.context.quick]
        )
        with console.step(f"Writing notes through {self.new.name}, then shutting it down"):
            writer.start()
            time.sleep(WRITE_S[self.context.quick])
            # The writer goes on while the stack stops: the notes it still gets
            # acknowledged count too. Litestream ships what is outstanding on SIGTERM.
            self.lab.sh(self.new, f"{HOST_COMPOSE} stop")
            writer.stop()
            lose(self.new)
        acknowledged = list(writer.acknowledged)
        outcome = self.outcome
        outcome.figures["host_loss.graceful_acknowledged"] = len(acknowledged)
        titles = self.recover(self.third, target, url, "deploy-graceful", "graceful_rto_s")
        if titles is None:
            return
        lost, _window = lost_window(acknowledged, titles, time.time())
        outcome.figures["host_loss.graceful_lost"] = lost
        outcome.check(
            lost == 0,
            f"{lost} of {len(acknowledged)} notes acknowledged before a clean shutdown are "
            f"missing on {self.third.name}",
        )


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="host_loss")
    network = f"drills-host-loss-{uuid.uuid4().hex[:6]}"
    with host_lab.running(context, "host_loss", 3) as lab:
        hosts.create_network(network)
        target = None
        try:
            for host in lab.hosts:
                docker("network", "connect", network, host.container)
            with console.step("Starting the SFTP-only replica server"):
                target = sftp_target.start(network, "drills-host-loss-sftp", context.scratch)
            # The stack's containers inside a test host have no Docker DNS for this
            # network: the server's address.
            address = docker(
                "inspect", "-f",
                f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                target.container,
            ).stdout.strip()  # fmt: skip
            lab.env["WEBAPP_REPLICA_KEY_FILE"] = str(target.key_file)
            HostLoss(context, lab, outcome).run(target, address)
        finally:
            if target is not None:
                target.stop()
            for host in lab.hosts:
                docker("network", "disconnect", "-f", network, host.container, check=False)
            docker("network", "rm", network, check=False)
    return outcome
