"""The workflow registers' shared SQLite plumbing: one file, WAL, serialised transactions.

The flag and ban registers keep small amounts of workflow state next to each other in
``workflows.sqlite3``; both need the same connection set-up, the same transaction discipline
(``BEGIN IMMEDIATE`` so two workers never interleave a read-modify-write) and the same error
for a file that cannot be used.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from hub.errors import HubError

__all__ = ["RegisterError", "SQLiteState"]


class RegisterError(HubError):
    """A workflow register cannot be read or written."""


class SQLiteState:
    """One SQLite file with a schema; safe to share between threads of one process."""

    #: what the file is, for error messages ("flag register", "ban register")
    label = "register"
    #: CREATE ... IF NOT EXISTS statements, run on every open
    ddl: Sequence[str] = ()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
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
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RegisterError(f"{self.label} {self.path}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection for a read, serialised with writes of this process."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise RegisterError(f"{self.label} {self.path}: {exc}") from exc
