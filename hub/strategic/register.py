"""The hub's own store of s17A submissions, alerts sent and releases (``workflows.sqlite3``).

Submissions are kept whole (counts by area; nothing personal: the schema lets nothing else
in), the latest per submitter, period and category: a later submission is a correction and
replaces the earlier one. Written only through the s17A process's effects
(``hub.processes.s17a``), so a re-routed event writes the same row again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hub.strategic.dataset import Dataset, ReleasedCell, Submission, cells_from_event
from hub.workflows.sqlite_state import SQLiteState

__all__ = ["Release", "StrategicRegister"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS strategic_submissions (
        submitter TEXT NOT NULL,
        period TEXT NOT NULL,
        category TEXT NOT NULL,
        submission_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        counts TEXT NOT NULL,
        PRIMARY KEY (submitter, period, category)
    )""",
    """CREATE TABLE IF NOT EXISTS strategic_alerts (
        alert_id TEXT PRIMARY KEY,
        submitter TEXT NOT NULL,
        period TEXT NOT NULL,
        kind TEXT NOT NULL,
        sent_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS strategic_releases (
        release_id TEXT PRIMARY KEY,
        period TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        event_id TEXT NOT NULL,
        released_at TEXT NOT NULL,
        recipients TEXT NOT NULL
    )""",
    # what each release carried: the console's charts show released figures only
    """CREATE TABLE IF NOT EXISTS strategic_release_cells (
        release_id TEXT PRIMARY KEY,
        period TEXT NOT NULL,
        threshold INTEGER NOT NULL,
        cells TEXT NOT NULL
    )""",
)


@dataclass(frozen=True, slots=True)
class Release:
    """A dataset the hub released, as routed and audited."""

    release_id: str
    period: str
    sha256: str
    event_id: str
    released_at: str
    recipients: tuple[str, ...]


class StrategicRegister(SQLiteState):
    """Submissions (latest per submitter, period, category), alerts sent, releases."""

    label = "s17A register"
    ddl = _DDL

    def keep(
        self,
        *,
        submitter: str,
        period: str,
        category: str,
        submission_id: str,
        event_id: str,
        received_at: dt.datetime,
        counts: Mapping[str, int],
    ) -> None:
        """Keep a submission; it replaces an earlier one of the same submitter, period, category.

        The same event again (a re-route) writes the same row; an older event than the one
        kept (out of order) changes nothing.
        """
        with self._tx() as conn:
            conn.execute(
                """INSERT INTO strategic_submissions VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (submitter, period, category) DO UPDATE SET
                     submission_id = excluded.submission_id, event_id = excluded.event_id,
                     received_at = excluded.received_at, counts = excluded.counts
                   WHERE excluded.received_at >= strategic_submissions.received_at""",
                (
                    submitter,
                    period,
                    category,
                    submission_id,
                    event_id,
                    received_at.astimezone(dt.UTC).isoformat(),
                    json.dumps(dict(sorted(counts.items())), separators=(",", ":")),
                ),
            )

    def submissions(self, period: str | None = None) -> list[Submission]:
        """The kept submissions (of one period, or all), by period, submitter, category."""
        sql = "SELECT * FROM strategic_submissions"
        args: tuple[str, ...] = ()
        if period is not None:
            sql += " WHERE period = ?"
            args = (period,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY period, submitter, category", args).fetchall()
        return [
            Submission(
                submitter=r[0],
                period=r[1],
                category=r[2],
                submission_id=r[3],
                event_id=r[4],
                received_at=r[5],
                counts=json.loads(r[6]),
            )
            for r in rows
        ]

    def periods(self) -> list[str]:
        """Every period with a submission, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT period FROM strategic_submissions ORDER BY period"
            ).fetchall()
        return [r[0] for r in rows]

    def mark_alert(
        self, alert_id: str, *, submitter: str, period: str, kind: str, at: dt.datetime
    ) -> None:
        """Remember an alert was published (so it is never sent twice)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO strategic_alerts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert_id, submitter, period, kind, at.astimezone(dt.UTC).isoformat()),
            )

    def alert_sent(self, alert_id: str) -> bool:
        """Whether this alert was published."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM strategic_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return row is not None

    def record_release(self, release: Release) -> None:
        """Remember a release published (no recipients yet) or routed (with its recipients)."""
        with self._tx() as conn:
            conn.execute(
                """INSERT INTO strategic_releases VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (release_id) DO UPDATE SET recipients = excluded.recipients
                   WHERE excluded.recipients != '[]'""",
                (
                    release.release_id,
                    release.period,
                    release.sha256,
                    release.event_id,
                    release.released_at,
                    json.dumps(list(release.recipients)),
                ),
            )

    def keep_released_cells(
        self, release_id: str, *, period: str, threshold: int, cells: Sequence[ReleasedCell]
    ) -> None:
        """Keep the cells a release carried (the same release again: no change)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO strategic_release_cells VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    release_id,
                    period,
                    threshold,
                    json.dumps([c.as_event() for c in cells], separators=(",", ":")),
                ),
            )

    def released(self) -> dict[str, Dataset]:
        """The latest released dataset of each period (as released: suppressed)."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT c.period, c.threshold, c.cells FROM strategic_release_cells c
                   JOIN strategic_releases r ON r.release_id = c.release_id
                   ORDER BY r.released_at, r.release_id"""
            ).fetchall()
        return {
            r[0]: Dataset(
                period=r[0],
                threshold=int(r[1]),
                cells=cells_from_event({"cells": json.loads(r[2])}),
                submitters=(),
                missing=(),
            )
            for r in rows
        }

    def releases(self, period: str | None = None) -> list[Release]:
        """Releases routed (of one period, or all), oldest first."""
        sql = "SELECT * FROM strategic_releases"
        args: tuple[str, ...] = ()
        if period is not None:
            sql += " WHERE period = ?"
            args = (period,)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY released_at, release_id", args).fetchall()
        return [Release(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5]))) for r in rows]
