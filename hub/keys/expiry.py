"""Automatic crypto-shredding at the end of retention: which cases are due, and the sweep.

How a case's retention is determined
    A case is disclosed under one or more rules, each with a ``retention`` (ISO 8601
    duration) in the protocol. Every *delivered* audit record of the case (found by its case
    pseudonym) keeps the data alive at its recipient's side until ``record.time +
    retention(record.rule)``; the case expires at the **latest** of those instants. So the
    longest retention among the rules it was disclosed under wins, counted from the last
    disclosure under that rule, and every new disclosure (an ``updated`` flag) restarts the
    clock. Retention is looked up by rule id in the protocol the hub runs now; the audit
    record names the protocol hash that decided the disclosure, but the running protocol is
    the partnership's current word on how long data is kept. Deliveries under an Art 19
    correction (``corrections:``) do not count: they only tell a holder to correct or
    remove what it already holds.

    A case is never expired automatically when any of its disclosures is under a rule with
    no ``retention``, a rule the protocol no longer has, or a retention that does not parse,
    nor when the audit log holds no disclosure for it (nothing says how long to keep it):
    those are reported as ``kept`` with the reason, and an operator decides (``hub keys
    shred``). A case under a legal hold is ``held``: skipped and reported, shredded by a
    later sweep once the hold is lifted.

Each expiry destroys the case key (``CaseKeys.shred_pseudonym``) and appends one
``shredded`` audit record whose reason names the rule and retention. Its record id is
derived from the case pseudonym, so two sweeps racing (two workers, or the CLI and the hub)
record it once. Logs carry ids only (case pseudonym, rule id), never a payload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from hub.clock import utc
from hub.errors import LegalHoldError, ProtocolError
from hub.keys.cases import CaseKeys
from hub.log import get_logger
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.policies import durations

if TYPE_CHECKING:
    from hub.audit.store import AuditStore
    from hub.policies.model import Protocol

__all__ = [
    "SWEEP_INTERVAL_S",
    "CaseExpiry",
    "add_duration",
    "expire_cases",
    "plan_expiry",
]

#: how often the running hub sweeps for expired cases (retention is counted in months)
SWEEP_INTERVAL_S = 3600.0
_MAX_RECORDS = 1_000_000  # delivered records of one case: far more than any case has
_log = get_logger("expiry")

Status = Literal["expired", "held", "kept", "due_later"]


def add_duration(start: dt.datetime, duration: str) -> dt.datetime:
    """``start`` plus an ISO 8601 duration (``P12M``, ``P2Y``, ``P30D``, ``PT12H``).

    Years and months are calendar arithmetic (31 January + P1M = 28/29 February), as a
    retention schedule means them; weeks, days and times are exact.

    Raises:
        ValueError: not an ISO 8601 duration of that form.
    """
    try:
        return durations.add(start, duration)
    except ProtocolError as exc:
        raise ValueError(
            f"retention: expected an ISO 8601 duration like P12M, got {duration!r}"
        ) from exc


@dataclass(frozen=True)
class CaseExpiry:
    """What the sweep found for one case (pseudonym only) and what it did."""

    case: str
    status: Status
    reason: str
    expires_at: dt.datetime | None = None
    rule: str | None = None
    retention: str | None = None
    last_disclosure: dt.datetime | None = None
    key_destroyed: bool = False

    def as_json(self) -> dict[str, object]:
        """JSON-ready form for ``hub keys expire --json``."""
        body = asdict(self)
        for name in ("expires_at", "last_disclosure"):
            value = body[name]
            body[name] = value.isoformat() if value is not None else None
        return body


def _judge(
    case: str, records: Iterable[AuditRecord], protocol: Protocol, now: dt.datetime
) -> CaseExpiry:
    """When the case's retention ends (see the module docstring), without side effects."""
    rules = {r.id: r for r in protocol.rules}
    # An Art 19 correction (an update or expiry told to an earlier holder) discloses nothing
    # the holder did not hold: it neither restarts nor sets the case's retention.
    corrections = {c.id for c in protocol.corrections}
    latest: tuple[dt.datetime, str, str, dt.datetime] | None = None
    last_seen: dt.datetime | None = None
    for record in records:
        when = utc(record.time)
        last_seen = when if last_seen is None else max(last_seen, when)
        if record.rule in corrections:
            continue
        rule = rules.get(record.rule or "")
        if rule is None or rule.retention is None:
            what = "has no retention" if rule is not None else "is not in the protocol"
            return CaseExpiry(
                case=case,
                status="kept",
                reason=f"disclosed under rule {record.rule} which {what}: shred by hand",
                rule=record.rule,
            )
        try:
            ends = add_duration(when, rule.retention)
        except ValueError as exc:
            return CaseExpiry(case=case, status="kept", reason=str(exc), rule=rule.id)
        if latest is None or ends > latest[0]:
            latest = (ends, rule.id, rule.retention, when)
    if latest is None:
        return CaseExpiry(
            case=case, status="kept", reason="no disclosure of this case in the audit log"
        )
    ends, rule_id, retention, disclosed = latest
    status: Status = "expired" if now >= ends else "due_later"
    verb = "ended" if status == "expired" else "ends"
    return CaseExpiry(
        case=case,
        status=status,
        reason=f"retention {retention} of rule {rule_id} from the disclosure at "
        f"{disclosed:%Y-%m-%dT%H:%M:%SZ} {verb} {ends:%Y-%m-%dT%H:%M:%SZ}",
        expires_at=ends,
        rule=rule_id,
        retention=retention,
        last_disclosure=last_seen,
    )


def plan_expiry(
    cases: CaseKeys, store: AuditStore, protocol: Protocol, *, now: dt.datetime
) -> list[CaseExpiry]:
    """Judge every case that still has a key; nothing is changed."""
    out = []
    for case in cases.live_cases():
        records = store.query(
            case_pseudonym=case, decision=AuditDecision.DELIVERED, limit=_MAX_RECORDS
        )
        judged = _judge(case, records, protocol, utc(now))
        hold = cases.hold_on(case) if judged.status == "expired" else None
        if hold is not None:
            judged = CaseExpiry(
                **{
                    **asdict(judged),
                    "status": "held",
                    "reason": f"{judged.reason}, but under legal hold since "
                    f"{hold.placed_at:%Y-%m-%d} by {hold.by}: skipped",
                }
            )
        out.append(judged)
    return out


def expire_cases(
    cases: CaseKeys,
    store: AuditStore,
    protocol: Protocol,
    *,
    clock: Callable[[], dt.datetime],
    dry_run: bool = False,
    by: str = "hub",
) -> list[CaseExpiry]:
    """Shred every case whose retention has ended; audit each, skip (and report) held ones.

    Args:
        cases: the hub's case keys.
        store: the audit store: read for disclosures, appended with ``shredded`` records.
        protocol: where each rule's retention is read.
        clock: "now" (injected so tests and drills control time).
        dry_run: report what would happen; shred and record nothing.
        by: who runs the sweep, for the audit record (``hub`` for the periodic sweep).

    Returns:
        One ``CaseExpiry`` per case that still had a key.
    """
    now = utc(clock())
    results = []
    for judged in plan_expiry(cases, store, protocol, now=now):
        if judged.status == "held":
            _log.warning("expiry_skipped_hold", case=judged.case, rule=judged.rule)
        if judged.status != "expired" or dry_run:
            results.append(judged)
            continue
        try:
            destroyed = cases.shred_pseudonym(judged.case)
        except LegalHoldError:  # a hold placed between the plan and the shred
            _log.warning("expiry_skipped_hold", case=judged.case, rule=judged.rule)
            results.append(
                CaseExpiry(**{**asdict(judged), "status": "held", "reason": "legal hold: skipped"})
            )
            continue
        store.append([_shredded_record(judged, now=now, by=by)])
        _log.info("case_expired", case=judged.case, rule=judged.rule, retention=judged.retention)
        results.append(CaseExpiry(**{**asdict(judged), "key_destroyed": destroyed}))
    return results


def _shredded_record(judged: CaseExpiry, *, now: dt.datetime, by: str) -> AuditRecord:
    action_id = f"case-expiry:{judged.case}"
    return AuditRecord(
        record_id=record_id_for(action_id, None, AuditDecision.SHREDDED.value),
        time=now,
        event_id=action_id,
        decision=AuditDecision.SHREDDED,
        rule=judged.rule,
        reason=f"case key shredded at the end of retention: {judged.reason} (by {by})",
        case_pseudonym=judged.case,
    )
