"""Drill 4: the data volume fills up while the app serves.

`app_data` is put on a size-limited tmpfs volume (a compose override written to the
drill's scratch directory), then a filler file takes every free byte. Writes must then
fail with problem+json 507 or 503, reads must go on, the database must stay intact, and
once the filler is removed writes must succeed again without any container restarting.
"""

from __future__ import annotations

import http.client
from collections import Counter

from drills import stack
from drills.outcome import DrillContext, DrillOutcome
from harness.repo import APP_UID
from kit import console

VOLUME_SIZE = "32m"
# Writes attempted on the full disk: the first few may still fit in pages SQLite holds.
ATTEMPTS = 20
NOTE_BODY = "x" * 20_000
FULL_STATUSES = {503, 507}

OVERRIDE = f"""\
# Written by the disk_full drill: app_data on a small tmpfs, owned by the app's user.
volumes:
  app_data:
    driver: local
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size={VOLUME_SIZE},uid={APP_UID},gid={APP_UID},mode=0700
"""

# dd stops at ENOSPC by itself; `|| true` because that stop is the point.
FILL = "dd if=/dev/zero of=/data/filler bs=65536 2>/dev/null || true; sync"


def full_write_verdict(statuses: list[int], problems: list[bool]) -> str | None:
    """Why the writes on a full disk broke the promise, or None when they kept it.

    Some writes may still succeed (201) before the space runs out; after that every one
    must be a 507 or 503 problem+json, and at least one write must have been refused.
    """
    refused = [status for status in statuses if status != 201]
    if not refused:
        return f"all {len(statuses)} writes on the full disk succeeded; it was never full"
    odd = sorted({s for s in refused if s not in FULL_STATUSES})
    if odd:
        return f"writes on the full disk answered {odd}; expected 507 or 503"
    first = statuses.index(refused[0])
    if 201 in statuses[first:]:
        return "a write succeeded after one had been refused for lack of space"
    pairs = zip(statuses, problems, strict=True)
    plain = [status for status, is_problem in pairs if status != 201 and not is_problem]
    if plain:
        return f"{len(plain)} refusals were not problem+json"
    return None


def run(context: DrillContext) -> DrillOutcome:
    outcome = DrillOutcome(name="disk_full")
    override = context.scratch / "compose.disk-full.yaml"
    override.write_text(OVERRIDE)
    write_status = 0
    reads_ok = recovered = False
    corrupt = True
    with stack.running(context, "disk_full", COMPOSE_FILE=stack.compose_files(override)) as prod:
        before = []
        for n in range(5):
            made = prod.http.request("POST", "/api/notes", {"title": f"before {n}", "body": "b"})
            if made.status != 201:
                outcome.fail(f"a write before filling the disk answered {made.status}")
                return outcome
            before.append(made.json()["id"])
        started = {s: prod.compose.inspect(s)["State"]["StartedAt"] for s in ("app", "sqlite")}
        with console.step(f"Filling the {VOLUME_SIZE} app_data volume"):
            prod.exec("sqlite", "sh", "-c", FILL)
            free = prod.exec("sqlite", "df", "-k", "/data").split()
        console.detail(f"df /data: {' '.join(free[-6:])}")

        statuses, problems = [], []
        for n in range(ATTEMPTS):
            try:
                answer = prod.http.request("POST", "/api/notes",
                                           {"title": f"full {n}", "body": NOTE_BODY})  # fmt: skip
            except (OSError, http.client.HTTPException) as error:
                outcome.fail(f"write {n} on the full disk got no answer: {error}")
                break
            statuses.append(answer.status)
            problems.append(stack.is_problem(answer))
            if answer.status != 201:
                write_status = answer.status
        verdict = full_write_verdict(statuses, problems)
        if verdict:
            outcome.fail(verdict)
        update = prod.http.request("PUT", f"/api/notes/{before[0]}", {"title": "changed"},
                                   headers={"If-Match": '"v1"'})  # fmt: skip
        outcome.check(
            update.status in FULL_STATUSES and stack.is_problem(update),
            f"an update on the full disk answered {update.status}; expected 507/503 problem+json",
        )
        reads = [prod.http.request("GET", f"/api/notes/{i}").status for i in before]
        listing = prod.http.request("GET", "/api/notes?limit=100")
        search = prod.http.request("GET", "/api/notes?q=before")
        reads_ok = reads == [200] * len(before) and listing.status == search.status == 200
        outcome.check(reads_ok, f"reads on the full disk: notes {reads}, list "
                      f"{listing.status}, search {search.status}; all should be 200")  # fmt: skip
        full_integrity = prod.integrity_check()

        with console.step("Freeing the space"):
            prod.exec("sqlite", "rm", "-f", "/data/filler")
        after = prod.http.request("POST", "/api/notes", {"title": "after", "body": NOTE_BODY})
        again = {s: prod.compose.inspect(s)["State"]["StartedAt"] for s in ("app", "sqlite")}
        recovered = after.status == 201 and again == started
        outcome.check(
            recovered,
            f"after freeing space a write answered {after.status}"
            + ("" if again == started else " and a container had restarted"),
        )
        listing = prod.http.request("GET", "/api/notes?limit=100").json()["items"]
        titles = {note["title"] for note in listing}
        kept = all(f"before {n}" in titles for n in range(len(before)))
        outcome.check(kept, "a note written before the disk filled is gone")
        final_integrity = prod.integrity_check()
        corrupt = not (full_integrity == final_integrity == "ok" and kept)
        outcome.check(not corrupt, f"integrity_check: full {full_integrity!r}, "
                      f"after {final_integrity!r}")  # fmt: skip
    outcome.figures.update({
        "disk_full.write_status": write_status,
        "disk_full.reads_ok": reads_ok,
        "disk_full.recovered": recovered,
        "disk_full.corrupt": corrupt,
    })  # fmt: skip
    outcome.notes.append(
        f"app_data on a {VOLUME_SIZE} tmpfs volume, filled by dd; writes while full: "
        + ", ".join(f"{count} x {status}" for status, count in Counter(statuses).items())
    )
    return outcome
