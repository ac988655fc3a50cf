"""The ASB Case Review register: the cases the hub tracks, their stages, deadlines and actions.

The audit log says who received what, never what it said; the router records here, as it
routes each ASB Case Review event, the few facts the timescales and the threshold need: case
and applicant references (pseudonymous), dates, each body's complaints (references, dates and
a keyed pseudonym of the complainant, never a name) and the recommended actions. Writes are
idempotent by event id (an event reprocessed after a crash changes nothing).

A table of its own in the workflow registers' SQLite file (``workflows.sqlite3``), with the
same transaction discipline (``hub.workflows.sqlite_state``); or, with ``HUB_STATE_URL``, in
PostgreSQL (``hub.state.postgres.PostgresAsbRegister``: the same SQL, which is why it keeps to
what both engines take: ``ON CONFLICT``, not ``INSERT OR IGNORE/REPLACE``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from hub.workflows.asb.cases import Action, Case, Stage, stage_after
from hub.workflows.asb.threshold import Complaint
from hub.workflows.sqlite_state import SQLiteState

__all__ = ["AsbRegister"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS asb_cases (
        case_ref TEXT PRIMARY KEY,
        applicant_ref TEXT NOT NULL,
        applicant_kind TEXT NOT NULL,
        district TEXT NOT NULL,
        received_on TEXT NOT NULL,
        stage TEXT NOT NULL,
        acknowledged_on TEXT,
        decided_on TEXT,
        threshold_met INTEGER,
        met_by TEXT,
        meeting_on TEXT,
        outcome TEXT,
        outcome_on TEXT,
        appeal_ref TEXT,
        appealed_on TEXT,
        appeal_decided_on TEXT,
        reopened INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS asb_answers (
        case_ref TEXT NOT NULL,
        body TEXT NOT NULL,
        answered_on TEXT NOT NULL,
        PRIMARY KEY (case_ref, body)
    )""",
    """CREATE TABLE IF NOT EXISTS asb_complaints (
        case_ref TEXT NOT NULL,
        body TEXT NOT NULL,
        reference TEXT NOT NULL,
        reported_on TEXT NOT NULL,
        incident_on TEXT NOT NULL,
        complainant TEXT NOT NULL,
        PRIMARY KEY (case_ref, body, reference)
    )""",
    """CREATE TABLE IF NOT EXISTS asb_actions (
        case_ref TEXT NOT NULL,
        action_ref TEXT NOT NULL,
        body TEXT NOT NULL,
        action TEXT NOT NULL,
        due_on TEXT NOT NULL,
        set_on TEXT NOT NULL,
        acknowledged_on TEXT,
        completed_on TEXT,
        PRIMARY KEY (case_ref, action_ref)
    )""",
    """CREATE TABLE IF NOT EXISTS asb_events (
        event_id TEXT PRIMARY KEY,
        case_ref TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS asb_alerts (
        alert_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        case_ref TEXT NOT NULL,
        sent_at TEXT NOT NULL
    )""",
)

_CASE_COLUMNS = (
    "case_ref, applicant_ref, applicant_kind, district, received_on, stage, acknowledged_on, "
    "decided_on, threshold_met, met_by, meeting_on, outcome, outcome_on, appeal_ref, "
    "appealed_on, appeal_decided_on, reopened"
)


def _d(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


class AsbRegister(SQLiteState):
    """The register in one SQLite file; safe to share between threads of one process."""

    label = "ASB case review register"
    ddl = _DDL

    # -- writes (the router) -----------------------------------------------------------------

    def _first(self, conn: sqlite3.Connection, event_id: str, case_ref: str) -> bool:
        """Claim an event id; False when it was applied before (a reprocess).

        Also serialises this case's read-modify-writes across workers (``_lock_key``: a
        no-op in SQLite, whose ``BEGIN IMMEDIATE`` already does it).
        """
        self._lock_key(conn, case_ref)
        cur = conn.execute(
            "INSERT INTO asb_events VALUES (?, ?) ON CONFLICT DO NOTHING", (event_id, case_ref)
        )
        return cur.rowcount == 1

    def open_case(
        self,
        *,
        event_id: str,
        case_ref: str,
        applicant_ref: str,
        applicant_kind: str,
        district: str,
        received_on: dt.date,
    ) -> None:
        """An application: the case starts at ``received``."""
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            conn.execute(
                "INSERT INTO asb_cases (case_ref, applicant_ref, applicant_kind, district, "
                "received_on, stage) VALUES (?, ?, ?, ?, ?, 'received') ON CONFLICT DO NOTHING",
                (case_ref, applicant_ref, applicant_kind, district, received_on.isoformat()),
            )

    def record(self, *, event_id: str, case_ref: str, **changes: Any) -> None:
        """Set case columns (dates as ``datetime.date``); the stage follows from them."""
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            self._update(conn, case_ref, changes)

    def _update(self, conn: sqlite3.Connection, case_ref: str, changes: Mapping[str, Any]) -> None:
        if changes:
            values = [
                _iso(v) if isinstance(v, dt.date) else (int(v) if isinstance(v, bool) else v)
                for v in changes.values()
            ]
            sets = ", ".join(f"{name} = ?" for name in changes)
            conn.execute(f"UPDATE asb_cases SET {sets} WHERE case_ref = ?", (*values, case_ref))  # noqa: S608 - column names are this module's own
        case = self._case(conn, case_ref)
        if case is not None:
            conn.execute(
                "UPDATE asb_cases SET stage = ? WHERE case_ref = ?", (stage_after(case), case_ref)
            )

    def answer(
        self,
        *,
        event_id: str,
        case_ref: str,
        body: str,
        answered_on: dt.date,
        complaints: Iterable[Complaint],
    ) -> None:
        """A body's answer: its complaints (a second answer adds to the first)."""
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            conn.execute(
                "INSERT INTO asb_answers VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (case_ref, body, answered_on.isoformat()),
            )
            conn.executemany(
                "INSERT INTO asb_complaints VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (case_ref, body, reference) DO UPDATE SET "
                "reported_on = excluded.reported_on, incident_on = excluded.incident_on, "
                "complainant = excluded.complainant",
                [
                    (case_ref, body, c.reference, c.reported_on.isoformat(),
                     c.incident_on.isoformat(), c.complainant)
                    for c in complaints
                ],
            )  # fmt: skip

    def outcome(
        self,
        *,
        event_id: str,
        case_ref: str,
        outcome: str,
        outcome_on: dt.date,
        meeting_on: dt.date | None,
        appeal: bool,
        actions: Iterable[Action],
    ) -> None:
        """The review's (or the appeal's) outcome and its recommended actions."""
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            changes: dict[str, Any] = {"outcome": outcome, "outcome_on": outcome_on}
            if appeal:
                changes["appeal_decided_on"] = outcome_on
                before = self._case(conn, case_ref)
                if outcome == "appeal_upheld" and before is not None and not before.threshold_met:
                    # the appeal overturned a threshold not met: the review goes ahead, its
                    # meeting counted from the appeal's outcome (``cases.deadlines``)
                    changes.update(threshold_met=True, met_by="appeal", outcome_on=None)
            else:
                changes["meeting_on"] = meeting_on or outcome_on
            conn.executemany(
                "INSERT INTO asb_actions VALUES (?, ?, ?, ?, ?, ?, NULL, NULL) "
                "ON CONFLICT (case_ref, action_ref) DO UPDATE SET body = excluded.body, "
                "action = excluded.action, due_on = excluded.due_on, set_on = excluded.set_on, "
                "acknowledged_on = NULL, completed_on = NULL",
                [
                    (case_ref, a.action_ref, a.body, a.action, a.due_on.isoformat(),
                     a.set_on.isoformat())
                    for a in actions
                ],
            )  # fmt: skip
            self._update(conn, case_ref, changes)

    def action_update(
        self, *, event_id: str, case_ref: str, action_ref: str, status: str, on: dt.date
    ) -> None:
        """A body acknowledged or completed an action."""
        column = "completed_on" if status == "completed" else "acknowledged_on"
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            conn.execute(
                f"UPDATE asb_actions SET {column} = COALESCE({column}, ?) "  # noqa: S608 - fixed
                "WHERE case_ref = ? AND action_ref = ?",
                (on.isoformat(), case_ref, action_ref),
            )
            self._update(conn, case_ref, {})

    def appeal(self, *, event_id: str, case_ref: str, appeal_ref: str, lodged_on: dt.date) -> None:
        """An appeal reopens the case until its outcome."""
        with self._tx() as conn:
            if not self._first(conn, event_id, case_ref):
                return
            conn.execute(
                "UPDATE asb_cases SET reopened = reopened + 1 WHERE case_ref = ?", (case_ref,)
            )
            self._update(
                conn,
                case_ref,
                {"appeal_ref": appeal_ref, "appealed_on": lodged_on, "appeal_decided_on": None},
            )

    def mark_alert(self, alert_id: str, kind: str, case_ref: str, at: dt.datetime) -> None:
        """Remember an alert (or a threshold decision) the hub published."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO asb_alerts VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert_id, kind, case_ref, at.isoformat()),
            )

    # -- reads -------------------------------------------------------------------------------

    def alert_sent(self, alert_id: str) -> bool:
        """Whether the hub already published this alert or decision."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM asb_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return row is not None

    def alerts(self, case_ref: str) -> list[tuple[str, str]]:
        """(alert id, kind) of what the hub published about a case."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT alert_id, kind FROM asb_alerts WHERE case_ref = ? ORDER BY sent_at",
                (case_ref,),
            ).fetchall()
        return [(str(a), str(k)) for a, k in rows]

    def applied(self, event_id: str, case_ref: str) -> bool:
        """Whether this event's updates to the case were applied already (``_first``)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM asb_events WHERE event_id = ? AND case_ref = ?",
                (event_id, case_ref),
            ).fetchone()
        return row is not None

    def case(self, case_ref: str) -> Case | None:
        """One case, or None."""
        with self._read() as conn:
            return self._case(conn, case_ref)

    def cases(self, *, stage: Stage | None = None, include_closed: bool = True) -> list[Case]:
        """Every case (optionally at one stage), oldest application first."""
        with self._read() as conn:
            refs = [
                str(r[0])
                for r in conn.execute(
                    "SELECT case_ref FROM asb_cases ORDER BY received_on, case_ref"
                ).fetchall()
            ]
            found = [c for c in (self._case(conn, r) for r in refs) if c is not None]
        if stage is not None:
            found = [c for c in found if c.stage == stage]
        if not include_closed:
            found = [c for c in found if c.stage != "closed"]
        return found

    def complaints(self, case_ref: str) -> list[Complaint]:
        """Every complaint the bodies answered with for a case."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT body, reference, reported_on, incident_on, complainant "
                "FROM asb_complaints WHERE case_ref = ? ORDER BY body, reference",
                (case_ref,),
            ).fetchall()
        return [
            Complaint(
                body=str(b),
                reference=str(r),
                reported_on=dt.date.fromisoformat(rep),
                incident_on=dt.date.fromisoformat(inc),
                complainant=str(c),
            )
            for b, r, rep, inc, c in rows
        ]

    def _case(self, conn: sqlite3.Connection, case_ref: str) -> Case | None:
        row = conn.execute(
            f"SELECT {_CASE_COLUMNS} FROM asb_cases WHERE case_ref = ?",  # noqa: S608 - constant
            (case_ref,),
        ).fetchone()
        if row is None:
            return None
        answers = {
            str(body): dt.date.fromisoformat(on)
            for body, on in conn.execute(
                "SELECT body, answered_on FROM asb_answers WHERE case_ref = ?", (case_ref,)
            ).fetchall()
        }
        actions = tuple(
            Action(
                action_ref=str(ref),
                body=str(body),
                action=str(text),
                due_on=dt.date.fromisoformat(due),
                set_on=dt.date.fromisoformat(set_on),
                acknowledged_on=_d(ack),
                completed_on=_d(done),
            )
            for ref, body, text, due, set_on, ack, done in conn.execute(
                "SELECT action_ref, body, action, due_on, set_on, acknowledged_on, completed_on "
                "FROM asb_actions WHERE case_ref = ? ORDER BY action_ref",
                (case_ref,),
            ).fetchall()
        )
        (ref, applicant, kind, district, received, stage, ack, decided, met, met_by, meeting,
         outcome, outcome_on, appeal_ref, appealed, appeal_decided, reopened) = row  # fmt: skip
        case = Case(
            case_ref=str(ref),
            applicant_ref=str(applicant),
            applicant_kind=str(kind),
            district=str(district),
            received_on=dt.date.fromisoformat(received),
            stage=stage,
            acknowledged_on=_d(ack),
            decided_on=_d(decided),
            threshold_met=None if met is None else bool(met),
            met_by=met_by,
            meeting_on=_d(meeting),
            outcome=outcome,
            outcome_on=_d(outcome_on),
            appeal_ref=appeal_ref,
            appealed_on=_d(appealed),
            appeal_decided_on=_d(appeal_decided),
            reopened=int(reopened),
            answers=answers,
            actions=actions,
        )
        return replace(case, stage=stage_after(case))
