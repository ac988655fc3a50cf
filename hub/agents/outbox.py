"""The router's audit outbox: audit messages kept on disk until the store holds them.

``AuditWatch`` keeps every audit message the router produced until the audit store confirms
it, and produces it again if the store never gets it (a broker that lost its memory, a sink
that dropped out). In memory alone that promise dies with the worker: a worker restarted
after the memory-only broker lost its topics would forget audit messages whose deliveries a
recipient had already read. So each message is also written here, before any delivery it
covers is handed to the producer, and removed once the store holds it; a worker starting up
takes over whatever is left (its own, or a dead worker's) and sends it again. Sending one
twice costs nothing: the store keeps one record per record id.

The file is ``audit-outbox.sqlite3`` in the data dir (0600 like the rest): the same SQLite
discipline as the workflow registers (``hub.workflows.sqlite_state``). A commit does not
fsync; the group commit (``hub.durable``) makes it durable before its events are acked, and
a process that dies before that leaves the commit in the page cache, which survives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

from hub.envelope.wire import WireMessage
from hub.workflows.sqlite_state import SQLiteState

__all__ = ["AuditOutbox"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS audit_outbox (
        record_id TEXT PRIMARY KEY,
        topic TEXT NOT NULL,
        key BLOB,
        value BLOB NOT NULL,
        headers TEXT NOT NULL,
        written_at REAL NOT NULL
    ) WITHOUT ROWID""",
)

#: record ids deleted per statement (SQLite's default limit on host parameters is 999+)
_CHUNK = 500


class AuditOutbox(SQLiteState):
    """Audit messages produced, not yet confirmed by the store; shared by one hub's workers."""

    label = "audit outbox"
    ddl = _DDL

    def put(self, messages: Iterable[tuple[str, WireMessage]]) -> None:
        """Keep these (record id, message) pairs until ``remove``; a repeat is kept once."""
        now = time.time()
        rows = [
            (
                record_id,
                m.topic,
                m.key,
                m.value,
                json.dumps([[name, value.hex()] for name, value in m.headers]),
                now,
            )
            for record_id, m in messages
        ]
        if not rows:
            return
        with self._tx() as conn:
            conn.executemany("INSERT OR IGNORE INTO audit_outbox VALUES (?, ?, ?, ?, ?, ?)", rows)

    def remove(self, record_ids: Sequence[str]) -> None:
        """The store holds these: forget them."""
        ids = list(record_ids)
        if not ids:
            return
        with self._tx() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM audit_outbox WHERE record_id IN ({marks})", chunk)  # noqa: S608 - placeholders only

    def pending(self) -> list[tuple[str, WireMessage]]:
        """Everything not yet confirmed, oldest first (a starting worker takes it over)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT record_id, topic, key, value, headers FROM audit_outbox ORDER BY written_at"
            ).fetchall()
        return [
            (
                str(record_id),
                WireMessage(
                    topic=str(topic),
                    key=bytes(key) if key is not None else None,
                    value=bytes(value),
                    headers=[(str(n), bytes.fromhex(v)) for n, v in json.loads(headers)],
                ),
            )
            for record_id, topic, key, value, headers in rows
        ]
