"""The Pub Watch ban register, and the check an early review must pass.

The audit log says who received a ban; it never holds payloads, so it cannot say when a ban
ends. The router records here, as it routes each ban event, the few facts the hub needs to
send the expiry at the ban's end: reference, scheme, who published it (it holds the ban too),
offence, period, and the photo reference to withdraw. No name or date of birth. The photo
reference is cleared when the expiry is routed: it is withdrawn with the ban.

Retail crime partnership exclusions (``uk.csp.retail.exclusion.v1``) are kept here too, by the
same reference and with the same lifecycle: the register remembers which scheme family each
belongs to, so the expiry at its end is a retail one, routed to retail holders only.

Same SQLite file as the MARAC flag register (``workflows.sqlite3`` in the data dir), own
tables; or the same PostgreSQL database with ``HUB_STATE_URL`` (``hub.state``). Writes are
idempotent and ordered by the hub's clock, like ``FlagRegister``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hub.policies import durations
from hub.policies.model import PubwatchPolicy
from hub.workflows.sqlite_state import SQLiteState

__all__ = [
    "BAN_TYPE",
    "EXPIRED_TYPE",
    "RETAIL_EXCLUSION_TYPE",
    "RETAIL_EXPIRED_TYPE",
    "UPDATED_TYPE",
    "Ban",
    "BanRegister",
    "check_ban_start",
    "check_ban_update",
    "expired_type_for",
    "is_ban_start",
    "is_exclusion_event",
]

BAN_TYPE = "uk.csp.pubwatch.ban.v1"
UPDATED_TYPE = "uk.csp.pubwatch.ban.updated.v1"
EXPIRED_TYPE = "uk.csp.pubwatch.ban.expired.v1"
RETAIL_EXCLUSION_TYPE = "uk.csp.retail.exclusion.v1"
RETAIL_EXPIRED_TYPE = "uk.csp.retail.exclusion.expired.v1"
#: what starts a ban in the register, and the expiry the hub sends at its end
_STARTS = {BAN_TYPE: EXPIRED_TYPE, RETAIL_EXCLUSION_TYPE: RETAIL_EXPIRED_TYPE}
_EXCLUSION_PREFIXES = ("uk.csp.pubwatch.ban.", "uk.csp.retail.exclusion.")


def is_exclusion_event(event_type: str) -> bool:
    """A Pub Watch ban, a retail exclusion, or a change to or end of one."""
    return event_type.startswith(_EXCLUSION_PREFIXES)


def is_ban_start(event_type: str) -> bool:
    """A new Pub Watch ban or retail exclusion (not a change to or the end of one)."""
    return event_type in _STARTS


def expired_type_for(start_type: str) -> str:
    """The expiry event type for a ban started by ``start_type`` (a Pub Watch ban by default)."""
    return _STARTS.get(start_type, EXPIRED_TYPE)


BanStatus = Literal["active", "expired"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS pubwatch_bans (
        ban_ref TEXT PRIMARY KEY,
        scheme TEXT NOT NULL,
        publisher TEXT NOT NULL,
        incident_type TEXT,
        ban_start TEXT NOT NULL,
        ban_end TEXT NOT NULL,
        photo_ref TEXT,
        status TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_event_id TEXT NOT NULL,
        last_event_type TEXT NOT NULL
    )""",
    # the event type that started each ban, where it is not a Pub Watch ban (older registers
    # hold Pub Watch bans only): a retail exclusion ends with a retail expiry
    """CREATE TABLE IF NOT EXISTS exclusion_kinds (
        ban_ref TEXT PRIMARY KEY,
        start_type TEXT NOT NULL
    )""",
    # every event that started a ban: a start routed again after a crash (at-least-once)
    # finds its own ban in force, and must be routed as before, not refused as a repeat
    """CREATE TABLE IF NOT EXISTS ban_starts (
        event_id TEXT NOT NULL,
        ban_ref TEXT NOT NULL,
        PRIMARY KEY (event_id, ban_ref)
    )""",
    """CREATE TABLE IF NOT EXISTS pubwatch_notices (
        notice_id TEXT PRIMARY KEY,
        ban_ref TEXT NOT NULL,
        sent_at TEXT NOT NULL
    )""",
)


#: a new ban replaces every column of an earlier one with its reference (SQL shared by SQLite
#: and PostgreSQL: ``ON CONFLICT ... DO UPDATE``, not SQLite's ``INSERT OR REPLACE``)
_REPLACE_BAN = ", ".join(
    f"{column} = excluded.{column}"
    for column in (
        "scheme", "publisher", "incident_type", "ban_start", "ban_end", "photo_ref", "status",
        "updated_at", "last_event_id", "last_event_type",
    )
)  # fmt: skip


_INSERT_BAN = (
    "INSERT INTO pubwatch_bans VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?) "  # noqa: S608
    f"ON CONFLICT (ban_ref) DO UPDATE SET {_REPLACE_BAN}"
)


class Ban(BaseModel):
    """One ban as the workflows see it."""

    model_config = ConfigDict(frozen=True)

    ban_ref: str
    scheme: str
    publisher: str
    incident_type: str | None
    ban_start: dt.date
    ban_end: dt.date
    photo_ref: str | None
    status: BanStatus
    updated_at: dt.datetime
    last_event_id: str
    last_event_type: str

    def ended(self, today: dt.date) -> bool:
        """``ban_end`` is the ban's last day: it has ended from the day after."""
        return today > self.ban_end


class BanRegister(SQLiteState):
    """The ban tables in one SQLite file; safe to share between threads of one process."""

    label = "ban register"
    ddl = _DDL

    # -- writes (the router) -----------------------------------------------------------------

    def record(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        publisher: str,
        at: dt.datetime,
        event_id: str,
    ) -> None:
        """Apply one routed ban event; an older or repeated event never overwrites a newer one."""
        ref = str(data["ban_ref"])
        with self._tx() as conn:
            self._lock_key(conn, ref)
            row = conn.execute(
                "SELECT updated_at, last_event_id FROM pubwatch_bans WHERE ban_ref = ?", (ref,)
            ).fetchone()
            if row is not None and (row[1] == event_id or dt.datetime.fromisoformat(row[0]) > at):
                return
            stamp = (at.isoformat(), event_id, event_type, ref)
            if event_type in _STARTS:
                if event_type != BAN_TYPE:
                    conn.execute(
                        "INSERT INTO exclusion_kinds VALUES (?, ?) ON CONFLICT (ban_ref) "
                        "DO UPDATE SET start_type = excluded.start_type",
                        (ref, event_type),
                    )
                conn.execute(
                    "INSERT INTO ban_starts VALUES (?, ?) ON CONFLICT DO NOTHING", (event_id, ref)
                )
                subject = data.get("subject") or {}
                conn.execute(
                    _INSERT_BAN,
                    (
                        ref,
                        str(data["scheme"]),
                        publisher,
                        str(data.get("incident_type")),
                        _iso(data["ban_start"]),
                        _iso(data["ban_end"]),
                        subject.get("photo_ref"),
                        *stamp[:3],
                    ),
                )
            elif row is None:
                return  # a change to a ban the hub never routed: nothing to keep in step
            elif event_type == UPDATED_TYPE:
                conn.execute(
                    """UPDATE pubwatch_bans SET ban_end = ?, status = 'active',
                           updated_at = ?, last_event_id = ?, last_event_type = ?
                       WHERE ban_ref = ?""",
                    (_iso(data["ban_end"]), *stamp),
                )
            elif event_type in _STARTS.values():  # the photo reference is withdrawn with the ban
                conn.execute(
                    """UPDATE pubwatch_bans SET status = 'expired', photo_ref = NULL,
                           updated_at = ?, last_event_id = ?, last_event_type = ?
                       WHERE ban_ref = ?""",
                    stamp,
                )

    def mark_sent(self, notice_id: str, ban_ref: str, at: dt.datetime) -> bool:
        """Record that a notice was published; False when it already was (send each once)."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO pubwatch_notices VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (notice_id, ban_ref, at.isoformat()),
            )
            return cur.rowcount == 1

    # -- reads -------------------------------------------------------------------------------

    def ban(self, ban_ref: str) -> Ban | None:
        """One ban, or None."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM pubwatch_bans WHERE ban_ref = ?", (ban_ref,)
            ).fetchone()
        return _ban(row) if row else None

    def bans(self, *, status: BanStatus | None = None) -> list[Ban]:
        """Every ban (or those with ``status``), by reference."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM pubwatch_bans WHERE CAST(? AS TEXT) IS NULL OR status = ? "
                "ORDER BY ban_ref",
                (status, status),
            ).fetchall()
        return [_ban(r) for r in rows]

    def start_type(self, ban_ref: str) -> str:
        """The event type that started the ban: a Pub Watch ban unless recorded otherwise."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT start_type FROM exclusion_kinds WHERE ban_ref = ?", (ban_ref,)
            ).fetchone()
        return str(row[0]) if row else BAN_TYPE

    def started_by(self, event_id: str, ban_ref: str) -> bool:
        """Whether this event started this ban (it was routed before: a redelivery)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM ban_starts WHERE event_id = ? AND ban_ref = ?", (event_id, ban_ref)
            ).fetchone()
        return row is not None

    def sent(self, notice_id: str) -> bool:
        """Whether this notice was already published."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM pubwatch_notices WHERE notice_id = ?", (notice_id,)
            ).fetchone()
        return row is not None


def check_ban_update(
    data: Mapping[str, Any], policy: PubwatchPolicy, *, known: Ban | None, today: dt.date
) -> list[str]:
    """Why an update must be refused (empty: it may be shared).

    An early review comes after ``policy.early_review_after`` without incident, counted from
    the start of the ban as the hub first shared it (``known``), and shortens or lifts the
    ban, never extends it (shared/domain.md; R (Boyle) v Haverhill Pubwatch: the scheme
    decides, within its own terms).
    """
    if data.get("review") != "early_review":
        return []
    start = known.ban_start if known is not None else _date(data["ban_start"])
    reviewed = _date(data["reviewed_on"])
    earliest = durations.add(start, policy.early_review_after)
    problems = []
    if reviewed < earliest or today < earliest:
        when = reviewed if reviewed < earliest else today
        problems.append(
            f"an early review needs {policy.early_review_after} without incident since the "
            f"ban started on {start}: not before {earliest}, got {when}; "
            "republish as review=correction if the period was recorded wrongly"
        )
    if known is not None and _date(data["ban_end"]) > known.ban_end:
        problems.append(
            f"an early review shortens or lifts a ban, never extends it: ban_end "
            f"{_date(data['ban_end'])} is after the current end {known.ban_end}"
        )
    return problems


def check_ban_start(
    event_type: str, ban_ref: str, *, known: Ban | None, started_here: bool, today: dt.date
) -> str | None:
    """Why a new ban must be refused: one with its reference is in force (None: route it).

    Every holder would otherwise be told of the same ban twice, the second maybe with
    another period. ``started_here``: this very event started the ban in force, routed
    before a crash and now again (at-least-once): it must be routed as it was the first
    time. A ban that has ended (expired, or past its last day) may be followed by a new one.
    """
    if known is None or known.status != "active" or known.ended(today) or started_here:
        return None
    if event_type == BAN_TYPE:
        change = f"publish {UPDATED_TYPE} to change it"
    else:  # a retail exclusion has no update event: it runs to its end
        change = "a new exclusion needs a new reference"
    return (
        f"ban {ban_ref} already in force from {known.ban_start} to {known.ban_end} "
        f"(published on {known.updated_at:%Y-%m-%d}, event {known.last_event_id}); {change}"
    )


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _iso(value: Any) -> str:
    return _date(value).isoformat()


def _ban(row: tuple[object, ...]) -> Ban:
    return Ban(
        ban_ref=str(row[0]),
        scheme=str(row[1]),
        publisher=str(row[2]),
        incident_type=None if row[3] is None else str(row[3]),
        ban_start=dt.date.fromisoformat(str(row[4])),
        ban_end=dt.date.fromisoformat(str(row[5])),
        photo_ref=None if row[6] is None else str(row[6]),
        status=str(row[7]),
        updated_at=dt.datetime.fromisoformat(str(row[8])),
        last_event_id=str(row[9]),
        last_event_type=str(row[10]),
    )
