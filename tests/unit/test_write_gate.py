"""The writers' gate: one turn at a time per database file, handed over at check-in."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from sqlalchemy import text

from webapp.db.engine import make_engine, reader
from webapp.db.write_gate import WriteGate


def _enter_in_thread(gate: WriteGate, holder: object) -> threading.Event:
    entered = threading.Event()

    def run() -> None:
        gate.enter(holder)
        entered.set()

    threading.Thread(target=run, daemon=True).start()
    return entered


def test_a_second_writer_waits_until_the_first_turn_ends(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "app.db"), timeout_s=30)
    gate.enter("first")
    entered = _enter_in_thread(gate, "second")
    assert not entered.wait(0.3), "the second writer got a turn while the first held it"
    gate.leave("first")
    assert entered.wait(30)
    gate.leave("second")


def test_the_holder_can_begin_again_and_others_cannot_end_its_turn(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "app.db"), timeout_s=30)
    gate.enter("first")
    gate.enter("first")  # the same connection's next transaction: no self-deadlock
    gate.leave("someone else")
    entered = _enter_in_thread(gate, "second")
    assert not entered.wait(0.3)
    gate.leave("first")
    assert entered.wait(30)


def test_another_process_holding_the_file_lock_is_waited_for_then_given_up_on(
    tmp_path: Path,
) -> None:
    database = tmp_path / "app.db"
    gate = WriteGate(str(database), timeout_s=0.05)
    # A second open file description conflicts like another process's would.
    other = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        gate.enter("mine")  # gives up after the timeout: SQLite's busy handling decides
        # No turn was taken, so the thread lock is free for the next writer.
        fcntl.flock(other, fcntl.LOCK_UN)
        gate.timeout_s = 30
        entered = _enter_in_thread(gate, "next")
        assert entered.wait(30)
        gate.leave("mine")  # not the holder: changes nothing
        with_turn = _enter_in_thread(gate, "third")
        assert not with_turn.wait(0.3), "'next' holds the turn; 'third' must wait"
        gate.leave("next")
        assert with_turn.wait(30)
    finally:
        os.close(other)


def test_an_unwritable_directory_leaves_only_the_thread_lock(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "missing" / "app.db"), timeout_s=30)
    gate.enter("first")
    assert gate.lock_path is None
    entered = _enter_in_thread(gate, "second")
    assert not entered.wait(0.3)
    gate.leave("first")
    assert entered.wait(30)


def test_memory_databases_have_no_lock_file() -> None:
    assert WriteGate(":memory:", timeout_s=1).lock_path is None
    assert WriteGate(None, timeout_s=1).lock_path is None


def test_a_forked_child_forgets_a_parent_turn(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "app.db"), timeout_s=30)
    gate.enter("parent")
    gate.forget_turn()  # what os.register_at_fork runs in the child
    gate.enter("child")
    gate.leave("child")


def test_engine_writers_take_turns_until_check_in(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as setup:
        setup.execute(text("CREATE TABLE t (x INTEGER)"))
    second_wrote = threading.Event()

    def second_writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        second_wrote.set()

    with engine.connect() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        threading.Thread(target=second_writer, daemon=True).start()
        assert not second_wrote.wait(0.3)
        first.commit()
        # Committed, but the connection is still checked out: its turn lasts until then.
        first.execute(text("INSERT INTO t VALUES (3)"))
        first.commit()
    assert second_wrote.wait(30)
    # Readers never wait for the gate.
    with reader(engine).connect() as reading:
        assert sorted(reading.execute(text("SELECT x FROM t")).scalars()) == [1, 2, 3]
    engine.dispose()
