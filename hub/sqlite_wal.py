"""Put a SQLite file in WAL mode when several processes may open it for the first time.

Two workers of one hub open the same new files at start (the workflow registers, the seen-
event store, the audit store). Switching a new file to WAL takes an exclusive lock, and SQLite
answers ``database is locked`` at once when another connection holds it, without calling the
busy handler that ``timeout=`` sets: found when a worker of a two-worker bench run exited at
start, and reproduced in about half of all tries with four processes opening one new file
together. So the switch is retried, with backoff, for as long as the connection's own timeout.

Also the one write transaction every store here uses (``write_transaction``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["enable_wal", "write_transaction"]


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if anything fails, the commit included.

    A ``COMMIT`` can fail (disk full, an I/O error) and SQLite may then leave the transaction
    open: every later ``BEGIN`` on the connection would fail with "cannot start a transaction
    within a transaction", so a store that hit one full disk would refuse every write after
    it, even once space was freed. ``IMMEDIATE`` takes the write lock at once (waiting up to
    the connection's timeout) rather than at the first write, where a lock upgrade can fail
    at once with ``SQLITE_BUSY``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL)
            conn.execute("ROLLBACK")
        raise


def enable_wal(conn: sqlite3.Connection, *, within: float) -> str:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the lock.

    Returns the journal mode SQLite reports (``memory`` for an in-memory database, which has
    no WAL). Any other error, or still locked after ``within`` seconds, raises as SQLite did.
    """
    deadline = time.monotonic() + within
    delay = 0.002
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            return str(mode)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
