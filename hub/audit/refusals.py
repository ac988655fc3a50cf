"""Refused ``hub.audit`` messages: the IG role's alert that someone wrote to the audit stream.

The audit sink (``hub.agents.sink``) refuses a ``hub.audit`` message whose MAC fails
(``forged_audit_message``) or that does not decode (``unreadable_audit_message``): it copies
it to ``hub.quarantine`` and writes its own ``rejected`` record, event id
``audit:<topic>/<partition>@<offset>``, reason ``<kind>: <detail> (writer <w>; sha256 <hex>)``.
Those records hold no personal data (an offset, a reason, a digest), so the console can show
them to IG officers as they are.

Store-agnostic: ``AuditStore.query(decision="rejected", since=...)`` over a window (the
store's time index), a page at a time, filtered here. A store method over the ``event_id`` index
(``event_id >= 'audit:' AND event_id < 'audit;'``) would read only the refusals themselves;
until then the window bounds the cost.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.audit.store import AuditStore
from hub.clock import utc
from hub.models import AuditDecision, AuditRecord

__all__ = [
    "ALERT_WINDOW",
    "AUDIT_EVENT_PREFIX",
    "REFUSAL_KINDS",
    "Refusal",
    "Refusals",
    "is_refusal",
    "parse_refusal",
    "recent_refusals",
    "refusals_in",
]

#: how far back the console looks for refusals
ALERT_WINDOW = dt.timedelta(days=30)
#: the sink's event id for a refused message: ``audit:<topic>/<partition>@<offset>``
AUDIT_EVENT_PREFIX = "audit:"
REFUSAL_KINDS = ("forged_audit_message", "unreadable_audit_message")
#: rejected records read per query, and at most this many queries per look (then "at least")
_PAGE = 5_000
_MAX_PAGES = 200
_REASON = re.compile(
    r"^(?P<kind>[a-z_]+): (?P<detail>.*) \(writer (?P<writer>[^;]*); "
    r"sha256 (?P<sha256>[0-9a-f]{64})\)$",
    re.DOTALL,
)


@dataclass(frozen=True)
class Refusal:
    """One refused ``hub.audit`` message, as the sink recorded it."""

    time: dt.datetime
    origin: str
    kind: str
    detail: str
    writer: str | None
    sha256: str | None
    record_id: str


@dataclass(frozen=True)
class Refusals:
    """The refusals found in a window, newest first."""

    since: dt.datetime
    items: list[Refusal]
    #: the read stopped before the end of the window: there are at least ``len(items)``
    truncated: bool

    @property
    def count(self) -> int:
        """How many were found."""
        return len(self.items)


def is_refusal(record: AuditRecord) -> bool:
    """Whether a record is the sink's refusal of a ``hub.audit`` message.

    A party's own event rejected under an id that happens to start ``audit:`` names its
    publisher; the sink's record names none and gives one of the two reasons.
    """
    return (
        record.decision is AuditDecision.REJECTED
        and record.event_id.startswith(AUDIT_EVENT_PREFIX)
        and record.publisher is None
        and record.reason.startswith(tuple(f"{kind}:" for kind in REFUSAL_KINDS))
    )


def parse_refusal(record: AuditRecord) -> Refusal:
    """The parts of a refusal record (its reason text holds the kind, writer and digest)."""
    origin = record.origin or record.event_id.removeprefix(AUDIT_EVENT_PREFIX)
    match = _REASON.match(record.reason)
    if match is None:  # a reason in another shape: show it whole
        kind, _, detail = record.reason.partition(": ")
        return Refusal(record.time, origin, kind, detail, None, None, record.record_id)
    writer = match["writer"]
    return Refusal(
        time=record.time,
        origin=origin,
        kind=match["kind"],
        detail=match["detail"],
        writer=None if writer == "unknown" else writer,
        sha256=match["sha256"],
        record_id=record.record_id,
    )


def refusals_in(records: Iterable[AuditRecord]) -> list[Refusal]:
    """The refusals among ``records``, newest first."""
    found = [parse_refusal(r) for r in records if is_refusal(r)]
    return sorted(found, key=lambda r: utc(r.time), reverse=True)


def recent_refusals(
    store: AuditStore,
    *,
    now: dt.datetime,
    window: dt.timedelta = ALERT_WINDOW,
    page: int = _PAGE,
    max_pages: int = _MAX_PAGES,
) -> Refusals:
    """Refused ``hub.audit`` messages recorded in the ``window`` before ``now``.

    Reads the window's ``rejected`` records a page at a time (a partner's stream of bad input
    must not push a refusal past a single read's limit), each page from the latest time the
    one before reached, keeping only the refusals. Records are appended in nearly time order
    (the sink stamps a refusal when it writes it), so paging by time finds them; record ids
    drop the overlap. After ``max_pages`` pages it stops and says so (``truncated``).
    """
    since = utc(now) - window
    found: dict[str, AuditRecord] = {}
    cursor = since
    truncated = False
    for _ in range(max_pages):
        rejected = store.query(decision=AuditDecision.REJECTED, since=cursor, limit=page)
        found.update((r.record_id, r) for r in rejected if is_refusal(r))
        if len(rejected) < page:
            break
        latest = max(utc(r.time) for r in rejected)
        if latest <= cursor:  # a whole page at one instant: no way forward by time
            truncated = True
            break
        cursor = latest
    else:
        truncated = True
    return Refusals(since=since, items=refusals_in(found.values()), truncated=truncated)
