"""The MARAC flag register: the state the hub keeps so flags can be reviewed and expired.

The audit log says who received what; it never holds payloads, so it cannot say when a flag
is due for review. The router records here, as it routes each flag event, the few facts the
workflows need: case reference, subject pseudonym, status, review date and the referral
history. No names, addresses or narrative. Writes are idempotent (an event reprocessed after
a crash changes nothing) and ordered by the hub's own clock.

SQLite in the data dir (WAL, like the audit store), shared by the hub's workers on one host;
or, with ``HUB_STATE_URL``, PostgreSQL shared by workers on many hosts (``hub.state``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from hub.workflows.sqlite_state import RegisterError, SQLiteState

__all__ = ["UPDATED_TYPE", "Flag", "FlagRegister", "Referral", "RegisterError", "check_raise"]

UPDATED_TYPE = "uk.csp.marac.flag.updated.v1"

FlagStatus = Literal["active", "withdrawn", "expired"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS marac_flags (
        case_ref TEXT PRIMARY KEY,
        subject_ref TEXT,
        subject_pseudonym TEXT,
        status TEXT NOT NULL,
        review_date TEXT,
        raised_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_event_id TEXT NOT NULL,
        last_event_type TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS marac_referrals (
        event_id TEXT PRIMARY KEY,
        case_ref TEXT NOT NULL,
        subject_pseudonym TEXT NOT NULL,
        referred_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        repeat_of TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS marac_referrals_subject ON marac_referrals (subject_pseudonym)",
    """CREATE TABLE IF NOT EXISTS marac_alerts (
        alert_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        case_ref TEXT NOT NULL,
        sent_at TEXT NOT NULL
    )""",
)


class Flag(BaseModel):
    """One flag as the workflows see it."""

    model_config = ConfigDict(frozen=True)

    case_ref: str
    subject_ref: str | None
    subject_pseudonym: str | None
    status: FlagStatus
    review_date: dt.date | None
    raised_at: dt.datetime
    updated_at: dt.datetime
    last_event_id: str
    last_event_type: str


class Referral(BaseModel):
    """One referral (a raised flag): repeats point at the referral they repeat."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    case_ref: str
    subject_pseudonym: str
    referred_at: dt.datetime
    reason: str
    repeat_of: str | None


class FlagRegister(SQLiteState):
    """The register in one SQLite file; safe to share between threads of one process."""

    label = "flag register"
    ddl = _DDL

    # -- writes (the router) -----------------------------------------------------------------

    def record(
        self,
        *,
        case_ref: str,
        subject_ref: str | None,
        subject_pseudonym: str | None,
        status: FlagStatus,
        review_date: dt.date | None,
        at: dt.datetime,
        event_id: str,
        event_type: str,
    ) -> None:
        """Apply one lifecycle event; an older or repeated event never overwrites a newer one."""
        with self._tx() as conn:
            self._lock_key(conn, case_ref)
            row = conn.execute(
                "SELECT updated_at, last_event_id FROM marac_flags WHERE case_ref = ?", (case_ref,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO marac_flags VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        case_ref,
                        subject_ref,
                        subject_pseudonym,
                        status,
                        review_date.isoformat() if review_date else None,
                        at.isoformat(),
                        at.isoformat(),
                        event_id,
                        event_type,
                    ),
                )
                return
            if row[1] == event_id or dt.datetime.fromisoformat(row[0]) > at:
                return
            conn.execute(
                """UPDATE marac_flags SET status = ?,
                       review_date = COALESCE(?, review_date),
                       subject_ref = COALESCE(?, subject_ref),
                       subject_pseudonym = COALESCE(?, subject_pseudonym),
                       updated_at = ?, last_event_id = ?, last_event_type = ?
                   WHERE case_ref = ?""",
                (
                    status,
                    review_date.isoformat() if review_date else None,
                    subject_ref,
                    subject_pseudonym,
                    at.isoformat(),
                    event_id,
                    event_type,
                    case_ref,
                ),
            )

    def add_referral(self, referral: Referral) -> None:
        """Remember a referral (idempotent by event id)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO marac_referrals VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    referral.event_id,
                    referral.case_ref,
                    referral.subject_pseudonym,
                    referral.referred_at.isoformat(),
                    referral.reason,
                    referral.repeat_of,
                ),
            )

    def mark_alert(self, alert_id: str, kind: str, case_ref: str, at: dt.datetime) -> bool:
        """Record that an alert was sent; False when it already was (send each once)."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO marac_alerts VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (alert_id, kind, case_ref, at.isoformat()),
            )
            return cur.rowcount == 1

    # -- reads -------------------------------------------------------------------------------

    def last_referral(self, subject_pseudonym: str, *, other_than: str) -> Referral | None:
        """The subject's latest referral, other than the event being routed."""
        with self._read() as conn:
            row = conn.execute(
                """SELECT * FROM marac_referrals WHERE subject_pseudonym = ? AND event_id != ?
                   ORDER BY referred_at DESC LIMIT 1""",
                (subject_pseudonym, other_than),
            ).fetchone()
        return _referral(row) if row else None

    def raises(self, case_ref: str) -> list[Referral]:
        """Every raise of this case's flag (its referrals), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM marac_referrals WHERE case_ref = ? ORDER BY referred_at",
                (case_ref,),
            ).fetchall()
        return [_referral(r) for r in rows]

    def referrals(self) -> list[Referral]:
        """Every referral, oldest first."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM marac_referrals ORDER BY referred_at").fetchall()
        return [_referral(r) for r in rows]

    def flag(self, case_ref: str) -> Flag | None:
        """One flag, or None."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM marac_flags WHERE case_ref = ?", (case_ref,)
            ).fetchone()
        return _flag(row) if row else None

    def flags(self, *, status: FlagStatus | None = None) -> list[Flag]:
        """Every flag (or those with ``status``), by case reference."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM marac_flags WHERE CAST(? AS TEXT) IS NULL OR status = ? "
                "ORDER BY case_ref",
                (status, status),
            ).fetchall()
        return [_flag(r) for r in rows]

    def alert_sent(self, alert_id: str) -> bool:
        """Whether this alert was already sent."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM marac_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return row is not None

    def alert_time(self, alert_id: str) -> dt.datetime | None:
        """When this alert was sent (the hub's clock at the sweep), or None if it was not."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT sent_at FROM marac_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return None if row is None else dt.datetime.fromisoformat(str(row[0]))


def check_raise(
    case_ref: str, *, flag: Flag | None, raises: Sequence[Referral], event_id: str
) -> str | None:
    """Why a raise must be refused: the case's flag is already raised and active (None: route).

    Every department would otherwise hold two "raised" deliveries of one flag. ``raises``:
    the case's referrals, oldest first. A raise routed before a crash is routed again with
    the same id (at-least-once): it finds its own referral, and is routed as it was the
    first time. After a withdrawal or an expiry the case may be raised again.
    """
    if flag is None or flag.status != "active" or any(r.event_id == event_id for r in raises):
        return None
    last = raises[-1] if raises else None
    when = (last.referred_at if last is not None else flag.raised_at).date()
    by = last.event_id if last is not None else flag.last_event_id
    return (
        f"flag for case {case_ref} already raised on {when} (event {by}) and still active; "
        f"publish {UPDATED_TYPE} to change it"
    )


def _flag(row: tuple[object, ...]) -> Flag:
    return Flag(
        case_ref=str(row[0]),
        subject_ref=None if row[1] is None else str(row[1]),
        subject_pseudonym=None if row[2] is None else str(row[2]),
        status=str(row[3]),
        review_date=None if row[4] is None else dt.date.fromisoformat(str(row[4])),
        raised_at=dt.datetime.fromisoformat(str(row[5])),
        updated_at=dt.datetime.fromisoformat(str(row[6])),
        last_event_id=str(row[7]),
        last_event_type=str(row[8]),
    )


def _referral(row: tuple[object, ...]) -> Referral:
    return Referral(
        event_id=str(row[0]),
        case_ref=str(row[1]),
        subject_pseudonym=str(row[2]),
        referred_at=dt.datetime.fromisoformat(str(row[3])),
        reason=str(row[4]),
        repeat_of=None if row[5] is None else str(row[5]),
    )
