"""The workflow registers' shared SQLite plumbing: one file, WAL, serialised transactions.

The flag and ban registers keep small amounts of workflow state next to each other in
``workflows.sqlite3`` (or, with ``HUB_STATE_URL``, in PostgreSQL: ``hub.workflows.pg_state``);
both need the same connection set-up, the same transaction discipline
(``BEGIN IMMEDIATE`` so two workers never interleave a read-modify-write) and the same error
for a file that cannot be used.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from hub.durable import GroupSync
from hub.errors import HubError
from hub.sqlite_wal import enable_wal, write_transaction

__all__ = ["STATE_CACHE_KIB", "RegisterError", "SQLiteState"]


class RegisterError(HubError):
    """A workflow register cannot be read or written."""


#: the page cache of each state store's connection, in KiB
STATE_CACHE_KIB = 1024


class SQLiteState:
    """One SQLite file with a schema; safe to share between threads of one process.

    With ``group`` (the router's group commit, ``hub.durable``) commits do not fsync
    (``synchronous=NORMAL``, still atomic and consistent); ``sync`` fsyncs the write-ahead
    log once for every commit before it, before the events that wrote are acknowledged.
    Without it every commit is fsynced (``synchronous=FULL``): the CLI and the sweeps.
    """

    #: what the file is, for error messages ("flag register", "ban register")
    label = "register"
    #: CREATE ... IF NOT EXISTS statements, run on every open
    ddl: Sequence[str] = ()

    def __init__(self, path: Path, *, group: GroupSync | None = None) -> None:
        self.path = path
        self._group = group
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            enable_wal(self._conn, within=30.0)
            self._conn.execute(f"PRAGMA synchronous={'NORMAL' if group else 'FULL'}")
            # a worker holds one of these per store (seen events, outbox, registers): each
            # page cache fills as its file grows, SQLite's default 2 MiB each, C memory a
            # worker's own counters do not see (hub.state.sqlite_memory); recent rows are
            # what is read, and the operating system caches the rest of the file
            self._conn.execute(f"PRAGMA cache_size=-{STATE_CACHE_KIB}")
            # statement journals and sorts in memory, not spilled to files in /var/tmp on the
            # router's event loop (tens of writes an event, by strace)
            self._conn.execute("PRAGMA temp_store=MEMORY")
            for statement in self.ddl:
                self._conn.execute(statement)
        except sqlite3.Error as exc:
            raise RegisterError(f"{self.label} {path}: cannot open: {exc}") from exc

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; rolled back on any error."""
        with self._lock:
            try:
                with write_transaction(self._conn) as conn:  # a failed COMMIT rolls back too
                    yield conn
            except sqlite3.Error as exc:
                raise RegisterError(f"{self.label} {self.path}: {exc}") from exc
        if self._group is not None:
            self._group.dirty(self.sync, self.path.parent)

    def _lock_key(self, conn: Any, key: str) -> None:
        """Serialise read-modify-writes of one key across processes, inside ``_tx``.

        Nothing to do here: ``BEGIN IMMEDIATE`` already holds the file's write lock. The
        PostgreSQL twin (``hub.workflows.pg_state``) takes an advisory lock on the key, which
        also covers a row not written yet.
        """

    def sync(self) -> None:
        """Make every commit so far durable (by any process): one fsync of the write-ahead log.

        In WAL mode a commit is complete once its frames are in the ``-wal`` file; with
        ``synchronous=NORMAL`` SQLite writes them without fsync, so one fsync of that file
        (from any descriptor) covers every commit before it. A checkpoint that moved them into
        the database already synced both files (SQLite does that in NORMAL mode too).
        """
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: already durable
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, serialised with writes of this process."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise RegisterError(f"{self.label} {self.path}: {exc}") from exc
