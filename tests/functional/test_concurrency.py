"""Several writers at once, through the real app and real SQLite locking: zero errors,
the exact final count, and no lost update."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import webtest

from webapp.config import make_app

from .conftest import migrated_engine, settings_for

THREADS = 8
PER_THREAD = 40
PROCESSES = 4
PER_PROCESS = 40


def test_threads_create_and_update_with_no_errors_and_no_lost_update(tmp_path):
    path = tmp_path / "app.db"
    engine = migrated_engine(path, pool_size=THREADS)
    app = webtest.TestApp(make_app(settings_for(path), engine=engine))
    shared = app.post_json("/api/notes", {"title": "counter", "body": "0"}, status=201).json
    url = f"/api/notes/{shared['id']}"
    errors: list[str] = []
    conflicts = [0] * THREADS
    applied = [0] * THREADS

    def worker(index: int) -> None:
        for i in range(PER_THREAD):
            created = app.post_json(
                "/api/notes", {"title": f"t{index}-{i}"}, status="*", expect_errors=True
            )
            if created.status_int != 201:
                errors.append(f"create {created.status}: {created.text[:200]}")
            # Read-modify-write of one shared note: every conflict must be a 412.
            current = app.get(url)
            value = int(current.json["body"])
            updated = app.put_json(
                url,
                {"title": "counter", "body": str(value + 1)},
                headers={"If-Match": current.headers["ETag"]},
                status="*",
                expect_errors=True,
            )
            if updated.status_int == 200:
                applied[index] += 1
            elif updated.status_int == 412:
                conflicts[index] += 1
            else:
                errors.append(f"update {updated.status}: {updated.text[:200]}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(applied) + sum(conflicts) == THREADS * PER_THREAD
    final = app.get(url).json
    # No lost update: every 200 incremented the value exactly once.
    assert int(final["body"]) == sum(applied)
    assert final["version"] == 1 + sum(applied)
    total = 0
    cursor = None
    for _ in range(100):  # bounded walk over all pages
        query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = app.get("/api/notes", query).json
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert total == THREADS * PER_THREAD + 1
    engine.dispose()


def _process_writer(path: str, index: int, results) -> None:
    engine = migrated_engine(Path(path))
    app = webtest.TestApp(make_app(settings_for(Path(path)), engine=engine))
    failures = 0
    for i in range(PER_PROCESS):
        response = app.post_json(
            "/api/notes", {"title": f"p{index}-{i}"}, status="*", expect_errors=True
        )
        failures += response.status_int != 201
    engine.dispose()
    results.put(failures)


def test_processes_write_at_once_with_no_errors_and_exact_count(tmp_path):
    path = tmp_path / "app.db"
    migrated_engine(path).dispose()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_process_writer, args=(str(path), n, results))
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    failures = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert failures == [0] * PROCESSES
    app = webtest.TestApp(make_app(settings_for(path)))
    page = app.get("/api/notes", {"limit": 100}).json
    count = len(page["items"])
    while page["next_cursor"]:
        page = app.get("/api/notes", {"limit": 100, "cursor": page["next_cursor"]}).json
        count += len(page["items"])
    assert count == PROCESSES * PER_PROCESS
