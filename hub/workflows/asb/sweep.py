"""What the hub does for ASB Case Reviews on its own: decide thresholds, escalate deadlines.

``plan_sweep`` reads the register at the hub's clock: a case whose every relevant body has
answered gets the hub's threshold decision (``uk.csp.asb.review.threshold.v1``, with the
reasons of ``hub.workflows.asb.threshold.assess``); every deadline past its day and not met
is escalated once (``uk.csp.asb.review.alert.v1``) to the coordinator and the body that owns
it. ``sweep_asb`` publishes them as the hub's own signed events on ``hub.in.hub``, so the
protocol routes, minimises, encrypts and audits them like any other event. Ids are derived
from what they are about and the register remembers what was sent, so a sweep run twice
sends nothing twice; the router records a decision in the register when it routes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.errors import ProtocolError
from hub.log import get_logger
from hub.policies.model import AsbPolicy, Protocol
from hub.settings import HubSettings
from hub.state import open_asb_register
from hub.workflows.asb.cases import Case, deadlines
from hub.workflows.asb.events import ALERT_TYPE, THRESHOLD_TYPE
from hub.workflows.asb.register import AsbRegister
from hub.workflows.asb.threshold import assess
from hub.workflows.context import hub_publisher, workflow_context

__all__ = ["PlannedEvent", "bodies_for", "plan_sweep", "policy_of", "sweep_asb"]

_NS = uuid.UUID("8a7d2c10-4b3e-4f61-9c0d-5e2a1b3c4d70")
_log = get_logger("asb")
_ALERT_KIND = {
    "acknowledge": "acknowledge_overdue",
    "answer": "answer_overdue",
    "decision": "decision_overdue",
    "meeting": "meeting_overdue",
    "appeal_review": "appeal_review_overdue",
    "action_acknowledge": "action_acknowledge_overdue",
    "action_complete": "action_complete_overdue",
}


@dataclass(frozen=True)
class PlannedEvent:
    """One event the hub will publish about a case."""

    event_type: str
    event_id: str
    case_ref: str
    data: dict[str, Any]
    kind: str


def policy_of(protocol: Protocol) -> AsbPolicy:
    """The protocol's ``asb:`` section, or a clear error."""
    if protocol.asb is None:
        raise ProtocolError(
            f"protocol {protocol.protocol.id} has no 'asb:' section: ASB Case Reviews are off"
        )
    return protocol.asb


def bodies_for(protocol: Protocol, district: str) -> list[str]:
    """The relevant bodies of a case: the body role, agency-wide or of the case's district."""
    policy = policy_of(protocol)
    return sorted(
        p.id
        for p in protocol.parties
        if p.has_role(policy.body_role) and p.district in (None, district)
    )


def _id(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "/".join(parts)))


def threshold_id(case: Case) -> str:
    """The id of the hub's threshold decision for a case (one per application)."""
    return _id("threshold", case.case_ref, case.received_on.isoformat())


def plan_sweep(
    *, register: AsbRegister, protocol: Protocol, now: dt.datetime
) -> list[PlannedEvent]:
    """Everything due at ``now`` that was not done yet."""
    policy = policy_of(protocol)
    today = now.date()
    planned: list[PlannedEvent] = []
    for case in register.cases(include_closed=False):
        bodies = bodies_for(protocol, case.district)
        if case.decided_on is None and set(bodies) <= set(case.answers):
            decision_id = threshold_id(case)
            if not register.alert_sent(decision_id):
                result = assess(
                    register.complaints(case.case_ref),
                    policy.threshold,
                    received_on=case.received_on,
                )
                planned.append(
                    PlannedEvent(
                        THRESHOLD_TYPE,
                        decision_id,
                        case.case_ref,
                        {
                            "case_ref": case.case_ref,
                            "district": case.district,
                            "met": result.met,
                            "met_by": result.met_by,
                            "received_on": case.received_on.isoformat(),
                            "decided_on": today.isoformat(),
                            "complaints_considered": result.considered,
                            "qualifying_complaints": len(result.qualifying),
                            "distinct_complainants": result.complainants,
                            "bodies_answered": sorted(case.answers),
                            "reasons": list(result.reasons),
                        },
                        "threshold_met" if result.met else "threshold_not_met",
                    )
                )
                continue  # deadlines are judged again once the decision is routed
        planned.extend(_escalations(case, bodies, policy, register, today))
    return planned


def _escalations(
    case: Case, bodies: list[str], policy: AsbPolicy, register: AsbRegister, today: dt.date
) -> Iterable[PlannedEvent]:
    """One alert per deadline missed, naming the coordinator's or the body's duty."""
    for deadline in deadlines(
        case, bodies=bodies, coordinator=policy.coordinator, days=policy.working_days
    ):
        if not deadline.overdue(today):
            continue
        alert_id = _id(
            "alert", case.case_ref, deadline.kind, deadline.party, deadline.due_on.isoformat()
        )
        if register.alert_sent(alert_id):
            continue
        kind = _ALERT_KIND[deadline.kind]
        parties = [] if deadline.party == policy.coordinator else [deadline.party]
        yield PlannedEvent(
            ALERT_TYPE,
            alert_id,
            case.case_ref,
            {
                "alert_id": alert_id,
                "kind": kind,
                "case_ref": case.case_ref,
                "district": case.district,
                "parties": parties,
                "due_on": deadline.due_on.isoformat(),
                "detail": (
                    f"ASB case review {case.case_ref}: {deadline.party} did not "
                    f"{deadline.what} (due {deadline.due_on})"
                ),
            },
            kind,
        )


def sweep_asb(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) publish one sweep; returns what was done."""
    with workflow_context(settings) as ctx, open_asb_register(settings) as register:
        planned = plan_sweep(register=register, protocol=ctx.protocol, now=ctx.now)
        sent = 0
        if not dry_run and planned:

            async def publish_all() -> int:
                count = 0
                async with hub_publisher(settings) as client:
                    for event in planned:
                        await client.publish(
                            event.event_type,
                            event.data,
                            key=event.case_ref,
                            event_id=event.event_id,
                        )
                        register.mark_alert(event.event_id, event.kind, event.case_ref, ctx.now)
                        _log.info(
                            "workflow_event_published",
                            event_id=event.event_id,
                            event_type=event.event_type,
                            kind=event.kind,
                        )
                        count += 1
                return count

            sent = asyncio.run(publish_all())
    return {
        "now": ctx.now.isoformat(),
        "planned": [
            {"event_type": e.event_type, "event_id": e.event_id, "case_ref": e.case_ref,
             "kind": e.kind}
            for e in planned
        ],
        "published": sent,
        "held": [],
    }  # fmt: skip
