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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.agents.seen import SeenEvents
from hub.audit.sqlite import SQLiteAuditStore
from hub.client.inbox import Inbox
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.sqlite_wal import enable_wal, write_transaction
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


class _CommitFailsOnce:
    """A connection whose next ``COMMIT`` fails as a full disk would, leaving the
    transaction open (SQLite may or may not roll back after SQLITE_FULL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)


def test_a_failed_commit_rolls_back_so_the_next_write_goes_through(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE t (v INTEGER)")
    flaky = _CommitFailsOnce(conn)
    with (
        pytest.raises(sqlite3.OperationalError, match="disk is full"),
        write_transaction(flaky) as tx,  # type: ignore[arg-type]
    ):
        tx.execute("INSERT INTO t VALUES (1)")
    assert not conn.in_transaction  # not left open: a later BEGIN would fail on it
    with write_transaction(conn) as tx:
        tx.execute("INSERT INTO t VALUES (2)")
    assert conn.execute("SELECT v FROM t").fetchall() == [(2,)]


def audit_record(i: int) -> AuditRecord:
    return AuditRecord(
        record_id=record_id_for(f"evt-{i}", "council.housing", AuditDecision.DELIVERED),
        time=datetime(2024, 5, 1, 9, 0, i, tzinfo=UTC),
        event_id=f"evt-{i}",
        publisher="police",
        recipient="council.housing",
        decision=AuditDecision.DELIVERED,
        reason="rule matched",
    )


def test_the_audit_store_takes_a_batch_again_after_a_failed_commit(tmp_path: Path) -> None:
    """The sink retries a batch whose write failed; the store must not refuse it for ever."""
    store = SQLiteAuditStore(tmp_path / "audit.sqlite3")
    try:
        store.append([audit_record(0)])
        real = store._conn
        store._conn = _CommitFailsOnce(real)  # type: ignore[assignment]
        with pytest.raises(AuditError, match="disk is full"):
            store.append([audit_record(1), audit_record(2)])
        assert store.size() == 1  # nothing of the failed batch is stored
        assert store.append([audit_record(1), audit_record(2)]) == 2
        assert [r.record_id for r in store.query(limit=10)] == [
            audit_record(i).record_id for i in range(3)
        ]
    finally:
        store.close()
