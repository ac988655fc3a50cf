"""MARAC workflows: whether every department carries the flag, and whether it is current.

``flag_status`` answers the coordinator's question from the audit log (who was delivered
which flag event, who acknowledged it, who is overdue) and the flag register (status, review
date). ``plan_sweep`` decides what the hub must do now: prompt a review that is due, expire a
flag nobody reconfirmed within the grace period (unless a legal hold keeps it), escalate
overdue acknowledgements, and flag repeat referrals. ``run_sweep`` publishes those as the
hub's own signed events on ``hub.in.hub``, so they are routed, minimised, encrypted and
audited by the protocol like any other event. Event ids are derived from what they are about,
and the register remembers what was sent, so a sweep run twice sends nothing twice.

Every tracked acknowledgement (a flag event of any stage delivered to a department: raised,
updated, reviewed, withdrawn, expired) that is overdue is escalated once, whatever the flag's
state now: a withdrawal or expiry nobody acknowledged is as much a loop left open as a new
flag. The first escalation about an event is keyed on the event (``_ack_alert_id``); a
delivery of it that falls overdue later gets its own, keyed on its due time, so each is sent
once and ``hub marac status`` says "escalated" only of a delivery an alert named.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import AuditStore, open_store
from hub.clock import utc
from hub.log import get_logger
from hub.models import AuditDecision, AuditRecord
from hub.policies import durations
from hub.policies.model import MaracPolicy, Protocol
from hub.settings import HubSettings
from hub.workflows.health import ACCESS_TYPE
from hub.workflows.register import Flag, FlagRegister

__all__ = [
    "ALERT_TYPE",
    "EXPIRED_TYPE",
    "DepartmentAck",
    "FlagReport",
    "PlannedEvent",
    "earlier_recipients",
    "flag_status",
    "plan_sweep",
    "run_sweep",
]

ALERT_TYPE = "uk.csp.marac.alert.v1"
EXPIRED_TYPE = "uk.csp.marac.flag.expired.v1"
_FLAG_PREFIX = "uk.csp.marac.flag."
_NS = uuid.UUID("3d0f6c52-6a8e-4a51-8f7e-0c1b2d3e4f50")
_log = get_logger("marac")
_ALL = 1_000_000


def earlier_recipients(
    settings: HubSettings, pseudonymiser: Pseudonymiser
) -> Callable[[str], Collection[str]]:
    """Parties the audit log says were delivered any event of a case (UK GDPR Art 19)."""
    store: AuditStore | None = None

    def lookup(case_ref: str) -> Collection[str]:
        nonlocal store
        if store is None:
            store = open_store(settings, lookups=True)
        return store.case_recipients(pseudonymiser.case(case_ref))

    return lookup


@dataclass(frozen=True)
class DepartmentAck:
    """One flag event delivered to one department, and whether it was acknowledged."""

    party: str
    event_id: str
    event_type: str
    delivered_at: dt.datetime
    acknowledged_at: dt.datetime | None
    due_by: dt.datetime
    overdue: bool
    #: an ``ack_overdue`` alert naming this delivery was sent to the coordinator
    escalated: bool = False


@dataclass(frozen=True)
class FlagReport:
    """A flag and its acknowledgements: the answer to "is it on every department's system?"."""

    flag: Flag
    acks: tuple[DepartmentAck, ...]
    review_due: bool
    expires_on: dt.date | None
    escalated: tuple[str, ...] = ()
    #: urgent-care settings that said they viewed the flag, and when (CP-IS access notices
    #: delivered to the coordinator), oldest first
    views: tuple[tuple[str, dt.datetime], ...] = ()
    #: transfers of the case to peer partnerships (issue 20): (peer, event id, state: sent,
    #: received, acknowledged or owned: the peer took ownership), oldest first
    transfers: tuple[tuple[str, str, str], ...] = ()

    @property
    def overdue(self) -> tuple[DepartmentAck, ...]:
        """Deliveries not acknowledged in time."""
        return tuple(a for a in self.acks if a.overdue)

    @property
    def pending(self) -> tuple[DepartmentAck, ...]:
        """Deliveries not yet acknowledged (overdue or not)."""
        return tuple(a for a in self.acks if a.acknowledged_at is None)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``hub marac status --json``)."""
        return {
            "case_ref": self.flag.case_ref,
            "status": self.flag.status,
            "review_date": self.flag.review_date.isoformat() if self.flag.review_date else None,
            "review_due": self.review_due,
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "departments": [
                {
                    "party": a.party,
                    "event_id": a.event_id,
                    "event_type": a.event_type,
                    "delivered_at": a.delivered_at.isoformat(),
                    "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
                    "due_by": a.due_by.isoformat(),
                    "overdue": a.overdue,
                    "escalated": a.escalated,
                }
                for a in self.acks
            ],
            "escalated": list(self.escalated),
            "viewed": [{"party": party, "at": at.isoformat()} for party, at in self.views],
            "transfers": [
                {"peer": peer, "event_id": event_id, "state": state}
                for peer, event_id, state in self.transfers
            ],
        }


def _departments(protocol: Protocol, policy: MaracPolicy) -> set[str]:
    return {p.id for p in protocol.parties if p.has_role(policy.department_role)}


def _policy(protocol: Protocol) -> MaracPolicy:
    if protocol.marac is None:
        from hub.errors import ProtocolError

        raise ProtocolError(
            f"protocol {protocol.protocol.id} has no 'marac:' section: MARAC workflows are off"
        )
    return protocol.marac


def flag_status(
    *,
    register: FlagRegister,
    store: AuditStore,
    protocol: Protocol,
    pseudonymiser: Pseudonymiser,
    now: dt.datetime,
    case: str | None = None,
    include_closed: bool = False,
) -> list[FlagReport]:
    """Per flag: which departments acknowledged each flag event, which are overdue."""
    policy = _policy(protocol)
    departments = _departments(protocol, policy)
    if case is not None:
        one = register.flag(case)
        flags = [one] if one is not None else []
    else:
        flags = register.flags(status=None if include_closed else "active")
    reports = []
    for flag in flags:
        records = _chronological(
            store.query(case_pseudonym=pseudonymiser.case(flag.case_ref), limit=_ALL)
        )
        acks = tuple(
            replace(a, escalated=a.overdue and _escalated(register, a))
            for a in _acks(store, records, departments, policy, now)
        )
        expires = durations.add(flag.review_date, policy.review_grace) if flag.review_date else None
        escalated = tuple(sorted({a.party for a in acks if a.escalated}))
        views = tuple(
            sorted(
                (str(r.publisher), r.event_time or r.time)
                for r in records
                if r.decision == AuditDecision.DELIVERED
                and r.event_type == ACCESS_TYPE
                and r.recipient == policy.coordinator
            )
        )
        reports.append(
            FlagReport(
                transfers=_transfers(records, protocol),
                flag=flag,
                acks=acks,
                review_due=flag.status == "active"
                and flag.review_date is not None
                and flag.review_date <= now.date(),
                expires_on=expires,
                escalated=escalated,
                views=views,
            )
        )
    return reports


def _chronological(records: list[AuditRecord]) -> list[AuditRecord]:
    """The case's records by when the hub decided, then when each event happened.

    Not by append order: with several workers, each host's audit sink stores the batches it
    consumes, so two events of one case routed in order a few milliseconds apart can be
    appended the other way round. The sort is stable: one event's recipients keep their
    routing order. Times are compared in UTC: a ``ce_time`` sent without an offset is read
    as a naive time, which cannot be compared with an aware one (taken as UTC, as everywhere).
    """
    return sorted(records, key=lambda r: (utc(r.time), utc(r.event_time or r.time)))


def _transfers(records: list[AuditRecord], protocol: Protocol) -> tuple[tuple[str, str, str], ...]:
    """The case's transfers to peer hubs, and how far each got, from its audit records."""
    from hub.federation.ownership import OWNERSHIP_TYPE
    from hub.federation.proofs import PROOF_TYPE
    from hub.federation.receipts import RECEIPT_TYPE, receipt_id

    peers = {p.id for p in protocol.peers}
    if not peers:
        return ()
    heard = {
        (r.publisher, r.event_id)
        for r in records
        if r.decision == AuditDecision.DELIVERED and r.publisher in peers
    }
    owned_by = {
        r.publisher
        for r in records
        if r.event_type == OWNERSHIP_TYPE and (r.publisher, r.event_id) in heard
    }
    out = []
    for r in records:  # chronological already (``_chronological``)
        if (
            r.recipient not in peers
            or r.decision != AuditDecision.DELIVERED
            or r.event_type in (RECEIPT_TYPE, PROOF_TYPE, OWNERSHIP_TYPE)
        ):
            continue
        state = (
            "owned"
            if r.recipient in owned_by
            else "acknowledged"
            if (r.recipient, receipt_id(r.event_id, "acknowledged")) in heard
            else "received"
            if (r.recipient, receipt_id(r.event_id)) in heard
            else "sent"
        )
        out.append((str(r.recipient), r.event_id, state))
    return tuple(out)


def _acks(
    store: AuditStore,
    records: Iterable[AuditRecord],
    departments: set[str],
    policy: MaracPolicy,
    now: dt.datetime,
) -> Iterable[DepartmentAck]:
    delivered = [
        r
        for r in records
        if r.decision == AuditDecision.DELIVERED
        and r.recipient in departments
        and (r.event_type or "").startswith(_FLAG_PREFIX)
    ]
    for record in delivered:
        # The first acknowledgement of this delivery: each status (received, actioned) is a
        # record, and the earliest is when the department had it. Matched on the publisher
        # too: another party's event may share the id. Records written before
        # acknowledgements named the publisher name the department as publisher.
        acked = next(
            (
                a.time
                for a in store.query(event_id=record.event_id, party=record.recipient)
                if a.decision == AuditDecision.ACKNOWLEDGED
                and a.recipient == record.recipient
                and a.publisher in (record.publisher, record.recipient)
            ),
            None,
        )
        due = durations.add(record.time, policy.ack_limit)
        yield DepartmentAck(
            party=str(record.recipient),
            event_id=record.event_id,
            event_type=str(record.event_type),
            delivered_at=record.time,
            acknowledged_at=acked,
            due_by=due,
            overdue=acked is None and now > due,
        )


# -- the sweep -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedEvent:
    """One event the hub will publish, and the alert it settles in the register."""

    event_type: str
    event_id: str
    case_ref: str
    data: dict[str, Any]
    alert_kind: str


@dataclass
class SweepPlan:
    """What one sweep decided to publish, with counts for the operator."""

    events: list[PlannedEvent] = field(default_factory=list)
    held: list[str] = field(default_factory=list)


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def _ack_alert_id(event_id: str) -> str:
    """The first ``ack_overdue`` alert about a flag event: every delivery overdue by then."""
    return _id("ack_overdue", event_id)


def _late_ack_alert_id(event_id: str, due_by: dt.datetime) -> str:
    """A later ``ack_overdue`` alert: deliveries of the event that fell overdue after the first."""
    return _id("ack_overdue", event_id, due_by.isoformat())


def _escalated(register: FlagRegister, ack: DepartmentAck) -> bool:
    """Whether an alert named this delivery: one sent after it fell due, about its event.

    The sweep names every delivery overdue at its clock, so the first alert about the event
    named this one if it was sent after this one's due time; otherwise only a later alert
    for its due time did.
    """
    first = register.alert_time(_ack_alert_id(ack.event_id))
    if first is not None and first > ack.due_by:
        return True
    return register.alert_sent(_late_ack_alert_id(ack.event_id, ack.due_by))


_STAGES = {"raised": "flag", "updated": "the update of flag", "reviewed": "the review of flag",
           "withdrawn": "the withdrawal of flag", "expired": "the expiry of flag"}  # fmt: skip


def _what(event_type: str, case: str) -> str:
    stage = event_type.removeprefix(_FLAG_PREFIX).split(".", 1)[0]
    return f"{_STAGES.get(stage, 'flag')} {case}"


def plan_sweep(
    *,
    register: FlagRegister,
    store: AuditStore,
    protocol: Protocol,
    pseudonymiser: Pseudonymiser,
    held_cases: Collection[str],
    now: dt.datetime,
) -> SweepPlan:
    """Everything due at ``now`` that was not done yet. ``held_cases``: case references."""
    policy = _policy(protocol)
    plan = SweepPlan()
    today = now.date()

    def alert(kind: str, alert_id: str, flag_case: str, **data: Any) -> None:
        if register.alert_sent(alert_id):
            return
        body: dict[str, Any] = {
            "alert_id": alert_id,
            "kind": kind,
            "case_ref": flag_case,
            "subject_ref": None,
            "parties": [],
            "due_on": None,
        }
        body.update(data)
        plan.events.append(PlannedEvent(ALERT_TYPE, alert_id, flag_case, body, kind))

    for report in flag_status(
        register=register,
        store=store,
        protocol=protocol,
        pseudonymiser=pseudonymiser,
        now=now,
        include_closed=True,  # acknowledgements of withdrawals and expiries are tracked too
    ):
        _escalate(report, policy, register, alert)
        flag = report.flag
        if flag.status != "active":
            continue
        review = flag.review_date
        if review is not None and report.expires_on is not None and today > report.expires_on:
            if flag.case_ref in held_cases:
                plan.held.append(flag.case_ref)
                alert(
                    "expiry_held",
                    _id("expiry_held", flag.case_ref, review.isoformat()),
                    flag.case_ref,
                    subject_ref=flag.subject_ref,
                    due_on=report.expires_on.isoformat(),
                    detail=(
                        f"flag {flag.case_ref} was not reconfirmed by {report.expires_on} but "
                        "is under a legal hold: it stays in place until the hold is lifted"
                    ),
                )
                continue
            expiry_id = _id("expired", flag.case_ref, review.isoformat())
            if not register.alert_sent(expiry_id):
                contact = policy.contact
                plan.events.append(
                    PlannedEvent(
                        EXPIRED_TYPE,
                        expiry_id,
                        flag.case_ref,
                        {
                            "case_ref": flag.case_ref,
                            "subject_ref": flag.subject_ref or flag.case_ref,
                            "expired_on": today.isoformat(),
                            "review_date": review.isoformat(),
                            "grace": policy.review_grace,
                            "reason": (
                                f"not reconfirmed within {policy.review_grace} of its review "
                                f"date {review}: remove the flag"
                            ),
                            "contact": contact.model_dump()
                            if contact
                            else {"name": policy.coordinator, "phone": "", "email": ""},
                        },
                        "flag_expired",
                    )
                )
            continue
        if report.review_due and review is not None:
            alert(
                "review_due",
                _id("review_due", flag.case_ref, review.isoformat()),
                flag.case_ref,
                subject_ref=flag.subject_ref,
                due_on=review.isoformat(),
                detail=(
                    f"flag {flag.case_ref} is due for review on {review}; it expires at every "
                    f"recipient on {report.expires_on} unless reconfirmed"
                ),
            )
    for referral in register.referrals():
        if referral.repeat_of is None:
            continue
        alert(
            "repeat_referral",
            _id("repeat_referral", referral.event_id),
            referral.case_ref,
            detail=(
                f"case {referral.case_ref} is a repeat referral: the subject was referred "
                f"within {policy.repeat_window} before (event {referral.repeat_of})"
            ),
        )
    return plan


def _escalate(
    report: FlagReport,
    policy: MaracPolicy,
    register: FlagRegister,
    alert: Callable[..., None],
) -> None:
    """One ``ack_overdue`` alert per flag event for its overdue deliveries no alert named."""
    flag = report.flag
    waiting: dict[tuple[str, dt.datetime], list[DepartmentAck]] = {}
    for ack in report.overdue:
        if not ack.escalated:
            waiting.setdefault((ack.event_id, ack.due_by), []).append(ack)
    first_taken: set[str] = set()
    for (event_id, due_by), acks in sorted(waiting.items()):
        alert_id = _ack_alert_id(event_id)
        if alert_id in first_taken or register.alert_sent(alert_id):
            alert_id = _late_ack_alert_id(event_id, due_by)
        first_taken.add(_ack_alert_id(event_id))
        parties = sorted({a.party for a in acks})
        alert(
            "ack_overdue",
            alert_id,
            flag.case_ref,
            subject_ref=flag.subject_ref,
            parties=parties,
            detail=(
                f"{len(parties)} department(s) have not acknowledged "
                f"{_what(acks[0].event_type, flag.case_ref)} within {policy.ack_limit}: "
                f"{', '.join(parties)}"
            ),
        )


async def run_sweep(
    plan: SweepPlan,
    *,
    register: FlagRegister,
    publish: Any,
    now: dt.datetime,
) -> int:
    """Publish a plan with ``publish(event_type, data, key, event_id)``; record each as sent."""
    sent = 0
    for event in plan.events:
        await publish(event.event_type, event.data, event.case_ref, event.event_id)
        register.mark_alert(event.event_id, event.alert_kind, event.case_ref, now)
        _log.info(
            "workflow_event_published",
            event_id=event.event_id,
            event_type=event.event_type,
            kind=event.alert_kind,
        )
        sent += 1
    return sent
