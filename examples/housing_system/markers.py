"""The housing system's own table: one property marker per MARAC case, in SQLite.

This stands in for the council's repairs system (the thing operatives look at before they
knock): it knows nothing about Kafka or the hub; ``run.py`` turns deliveries into calls here.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["FLAG_TYPES", "Marker", "MarkerAction", "PropertyMarkers"]

RAISED = "uk.csp.marac.flag.raised.v1"
UPDATED = "uk.csp.marac.flag.updated.v1"
REVIEWED = "uk.csp.marac.flag.reviewed.v1"
WITHDRAWN = "uk.csp.marac.flag.withdrawn.v1"
EXPIRED = "uk.csp.marac.flag.expired.v1"
#: every MARAC flag event a district department receives
FLAG_TYPES = frozenset({RAISED, UPDATED, REVIEWED, WITHDRAWN, EXPIRED})


class MarkerAction(StrEnum):
    """What the housing system did with one flag event."""

    PLACED = "placed"
    UPDATED = "updated"
    REMOVED = "removed"
    NOTHING = "nothing"  # e.g. a withdrawal of a flag this system never held


@dataclass(frozen=True)
class Marker:
    """A property marker as a repairs operative sees it."""

    case_ref: str
    address: str
    postcode: str
    risk_level: str
    markers: list[str]
    review_date: str | None
    contact: dict[str, Any]
    last_event_id: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS property_markers (
    case_ref      TEXT PRIMARY KEY,
    address       TEXT NOT NULL,
    postcode      TEXT NOT NULL,
    risk_level    TEXT NOT NULL,
    markers       TEXT NOT NULL,
    review_date   TEXT,
    contact       TEXT NOT NULL,
    last_event_id TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marker_history (
    event_id   TEXT PRIMARY KEY,
    case_ref   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    action     TEXT NOT NULL,
    at         TEXT NOT NULL,
    acknowledged_at TEXT
);
"""


class PropertyMarkers:
    """Put, update and remove property markers; every change kept in ``marker_history``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def apply(self, event_id: str, event_type: str, data: dict[str, Any]) -> MarkerAction:
        """Apply one flag event; applying the same event id twice changes nothing."""
        case_ref = str(data["case_ref"])
        done = self._db.execute(
            "SELECT action FROM marker_history WHERE event_id = ?", (event_id,)
        ).fetchone()
        if done is not None:
            return MarkerAction(done[0])
        if event_type in (WITHDRAWN, EXPIRED):
            action = self._remove(case_ref)
        else:
            action = self._put(case_ref, event_id, data)
        self._db.execute(
            "INSERT INTO marker_history VALUES (?, ?, ?, ?, ?, NULL)",
            (event_id, case_ref, event_type, action.value, _now()),
        )
        return action

    def acknowledged(self, event_id: str) -> bool:
        """Whether the hub was already told this event was handled."""
        row = self._db.execute(
            "SELECT acknowledged_at FROM marker_history WHERE event_id = ?", (event_id,)
        ).fetchone()
        return row is not None and row[0] is not None

    def mark_acknowledged(self, event_id: str) -> None:
        """Record that the acknowledgement reached the broker."""
        self._db.execute(
            "UPDATE marker_history SET acknowledged_at = ? WHERE event_id = ?", (_now(), event_id)
        )

    def _put(self, case_ref: str, event_id: str, data: dict[str, Any]) -> MarkerAction:
        address = data.get("address") or {}
        exists = self.marker(case_ref) is not None
        self._db.execute(
            "INSERT INTO property_markers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (case_ref) DO UPDATE SET address = excluded.address, "
            "postcode = excluded.postcode, risk_level = excluded.risk_level, "
            "markers = excluded.markers, review_date = excluded.review_date, "
            "contact = excluded.contact, last_event_id = excluded.last_event_id, "
            "updated_at = excluded.updated_at",
            (
                case_ref,
                f"{address.get('line1', '')}, {address.get('town', '')}",
                address.get("postcode", ""),
                data.get("risk_level", "unknown"),
                json.dumps(data.get("markers") or []),
                data.get("review_date"),
                json.dumps(data.get("contact") or {}),
                event_id,
                _now(),
            ),
        )
        return MarkerAction.UPDATED if exists else MarkerAction.PLACED

    def _remove(self, case_ref: str) -> MarkerAction:
        gone = self._db.execute("DELETE FROM property_markers WHERE case_ref = ?", (case_ref,))
        return MarkerAction.REMOVED if gone.rowcount else MarkerAction.NOTHING

    def marker(self, case_ref: str) -> Marker | None:
        """The marker for a case, or None."""
        row = self._db.execute(
            "SELECT case_ref, address, postcode, risk_level, markers, review_date, contact, "
            "last_event_id FROM property_markers WHERE case_ref = ?",
            (case_ref,),
        ).fetchone()
        if row is None:
            return None
        return Marker(
            case_ref=row[0],
            address=row[1],
            postcode=row[2],
            risk_level=row[3],
            markers=json.loads(row[4]),
            review_date=row[5],
            contact=json.loads(row[6]),
            last_event_id=row[7],
        )

    def history(self, case_ref: str) -> list[tuple[str, str]]:
        """(event type, action) for a case, oldest first."""
        rows = self._db.execute(
            "SELECT event_type, action FROM marker_history WHERE case_ref = ? ORDER BY rowid",
            (case_ref,),
        ).fetchall()
        return [(str(t), str(a)) for t, a in rows]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
