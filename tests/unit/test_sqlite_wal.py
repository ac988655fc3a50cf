"""Several processes opening one new SQLite file at once: each gets it, in WAL mode.

Two workers of one hub open the same new files at start. SQLite answers the switch to WAL
with ``database is locked`` at once, whatever the busy timeout, while another connection
holds the lock; a worker of a two-worker bench run exited at start that way.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.agents.seen import SeenEvents
from hub.audit.sqlite import SQLiteAuditStore
from hub.client.inbox import Inbox
from hub.sqlite_wal import enable_wal
from hub.workflows.bans import BanRegister
from hub.workflows.register import FlagRegister

OPENERS: dict[str, Callable[[Path], object]] = {
    "flag register": FlagRegister,
    "ban register": BanRegister,
    "seen events": SeenEvents,
    "audit store": SQLiteAuditStore,
    "inbox": Inbox,
}


def _open(kind: str, path: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=30)
    OPENERS[kind](Path(path))  # raises in the child, which then exits non-zero


@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_processes_opening_a_new_file_together_all_get_it(kind: str, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # the child does SQLite work only
    for attempt in range(6):  # without the retry, about half of all attempts fail
        path = tmp_path / f"{attempt}.sqlite3"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open, args=(kind, str(path), barrier)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0], f"attempt {attempt}"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_lock_held_past_the_time_given_raises_sqlites_error(tmp_path: Path) -> None:
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    conn = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            enable_wal(conn, within=0.3)
    finally:
        holder.close()
        conn.close()


def test_an_in_memory_database_reports_its_mode() -> None:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        assert enable_wal(conn, within=1) == "memory"


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite3")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError):
        enable_wal(conn, within=30)
