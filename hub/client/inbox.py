"""A recipient's record of events already handled: consumers are idempotent by event.

At-least-once delivery means a crash can deliver an event twice; the inbox turns that into
exactly-once *handling* on the recipient's side. An event is its source and id (CloudEvents
1.0): two parties may publish the same id, and the second party's event is not a repeat of
the first's, so the inbox keeps both (``hub.models.event_key``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.models import event_key
from hub.sqlite_wal import enable_wal

__all__ = ["Inbox"]


class Inbox:
    """Events one party has handled, in a small SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        enable_wal(self._db, within=30.0)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at TEXT NOT NULL "
            "DEFAULT CURRENT_TIMESTAMP)"
        )

    def seen(self, event_id: str, *, source: str | None = None) -> bool:
        """Whether this event (``source`` and id) was handled before.

        An inbox written before events were told apart by source holds bare ids: such a row
        still counts as handled, whatever the source (a record of that time cannot say).
        """
        key = event_id if source is None else event_key(source, event_id)
        row = self._db.execute(
            "SELECT 1 FROM seen WHERE event_id IN (?, ?)", (key, event_id)
        ).fetchone()
        return row is not None

    def mark(self, event_id: str, *, source: str | None = None) -> None:
        """Remember an event (``source`` and id) as handled."""
        key = event_id if source is None else event_key(source, event_id)
        self._db.execute("INSERT OR IGNORE INTO seen (event_id) VALUES (?)", (key,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()
