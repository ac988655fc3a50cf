"""A recipient's record of event ids already handled: consumers are idempotent by event id.

At-least-once delivery means a crash can deliver an event twice; the inbox turns that into
exactly-once *handling* on the recipient's side.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.sqlite_wal import enable_wal

__all__ = ["Inbox"]


class Inbox:
    """Seen event ids for one party, in a small SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        enable_wal(self._db, within=30.0)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at TEXT NOT NULL "
            "DEFAULT CURRENT_TIMESTAMP)"
        )

    def seen(self, event_id: str) -> bool:
        """Whether this event id was handled before."""
        row = self._db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event_id,)).fetchone()
        return row is not None

    def mark(self, event_id: str) -> None:
        """Remember an event id as handled."""
        self._db.execute("INSERT OR IGNORE INTO seen (event_id) VALUES (?)", (event_id,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()
