"""What SQLite itself costs for the audit store's rows: the floor its append is measured against.

Issue 16 asks for 50,000 records/s on SQLite and says SQLite "can take well over 50,000 rows a
second in one transaction". That holds for some rows; whether it holds for *these* rows, with
the indexes an IG officer's queries need, a unique record id (the store keeps each record
once) and ``synchronous=FULL``, is measured here, in the same run as the store, on the same
disk, batch by batch:

- **store's tables**: the rows ``SQLiteAuditStore.append`` has just written (read back from
  the store outside the clock, so exactly its rows: columns, packed bytes, subject index
  rows), inserted into a second file with the store's own schema (created by
  ``SQLiteAuditStore`` itself) and connection settings, one ``executemany`` per table in one
  ``BEGIN IMMEDIATE ... COMMIT``. No Python builds anything inside the clock: this is the
  least any store of this layout can take.
- **bare log**: the same records as ``(seq, record_id UNIQUE, canonical)`` and nothing else:
  the least a log that keeps each record once can take, with no query index at all.

The ratios of the store's rate to these say how much of the store's time is SQLite's and how
much is the hub's.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from hub.audit.sqlite import SQLiteAuditStore, configure
from hub.sqlite_wal import enable_wal

__all__ = ["SQLiteFloor"]

_BARE_DDL = """CREATE TABLE log (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    canonical BLOB NOT NULL
)"""


def _connect(path: Path) -> sqlite3.Connection:
    """A connection set up as ``SQLiteAuditStore`` sets up its own (``configure``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    enable_wal(conn, within=30.0)
    configure(conn)
    return conn


def _insert(table: str, conn: sqlite3.Connection) -> str:
    width = len(conn.execute(f"SELECT * FROM {table} LIMIT 0").description)  # noqa: S608
    return f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"  # noqa: S608


class SQLiteFloor:
    """Twin files beside a store, fed the rows the store wrote; times only SQLite's work."""

    def __init__(self, store_path: Path, directory: Path) -> None:
        self._source = sqlite3.connect(store_path, isolation_level=None)
        self._last_seq = 0
        self._last_value = 0
        SQLiteAuditStore(directory / "floor-store.sqlite3").close()  # its schema, its way
        self._store = _connect(directory / "floor-store.sqlite3")
        self._bare = _connect(directory / "floor-bare.sqlite3")
        self._bare.execute(_BARE_DDL)
        self._insert_records = _insert("audit_records", self._store)
        self._insert_subjects = _insert("audit_subjects", self._store)
        self._insert_values = _insert("audit_values", self._store)
        self.store_ns: list[int] = []
        self.bare_ns: list[int] = []
        self.rows = 0

    def follow(self) -> None:
        """Insert what the store wrote since the last call into both twins, each timed alone."""
        read = self._source.execute
        records = read(
            "SELECT * FROM audit_records WHERE seq > ? ORDER BY seq", (self._last_seq,)
        ).fetchall()
        if not records:
            return
        first, last = records[0][0], records[-1][0]
        subjects = read(
            "SELECT * FROM audit_subjects WHERE seq BETWEEN ? AND ?", (first, last)
        ).fetchall()
        values = read("SELECT * FROM audit_values WHERE id > ?", (self._last_value,)).fetchall()
        bare = [(r[0], r[2], r[-1]) for r in records]  # seq, record_id, canonical
        self._last_seq = last
        self.rows += len(records)
        clock = time.perf_counter_ns
        start = clock()
        self._store.execute("BEGIN IMMEDIATE")
        self._store.executemany(self._insert_records, records)
        self._store.executemany(self._insert_subjects, subjects)
        self._store.execute("COMMIT")
        self.store_ns.append(clock() - start)
        if values:  # the shared values the rows refer to: not timed (a few rows, once)
            self._store.execute("BEGIN IMMEDIATE")
            self._store.executemany(self._insert_values, values)
            self._store.execute("COMMIT")
            self._last_value = max(v[0] for v in values)
        start = clock()
        self._bare.execute("BEGIN IMMEDIATE")
        self._bare.executemany("INSERT INTO log VALUES (?, ?, ?)", bare)
        self._bare.execute("COMMIT")
        self.bare_ns.append(clock() - start)

    def close(self) -> None:
        """Close every connection (the files go with the benchmark's temporary directory)."""
        for conn in (self._source, self._store, self._bare):
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def measured(self) -> dict[str, Any]:
        """Rows and seconds of each twin, for the result file."""
        return {
            "rows": self.rows,
            "store_tables_s": round(sum(self.store_ns) / 1e9, 3),
            "bare_log_s": round(sum(self.bare_ns) / 1e9, 3),
        }
