"""What the coordinator and the scrutiny panel read: case status, and the yearly figures.

``case_status`` is the register at the hub's clock: each case's stage, every deadline of its
stage, which are overdue and which were escalated. ``yearly_figures`` counts, from the audit
log alone (never the payloads, which the log does not hold), the ASB Case Review events the
hub delivered in a calendar year: applications, threshold decisions met and not met (the two
rules they are delivered under, ``asb-threshold-met`` and ``asb-threshold-not-met`` in the
reference protocol: any rule conditioned on ``met``), outcomes and appeals. These are the
figures a council's crime and disorder scrutiny panel is shown each year.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hub.audit.store import AuditStore
from hub.models import AuditDecision, AuditRecord
from hub.policies.model import Protocol
from hub.workflows.asb.cases import Case, Deadline, deadlines
from hub.workflows.asb.events import (
    APPEAL_TYPE,
    APPLICATION_TYPE,
    ASB_PREFIX,
    OUTCOME_TYPE,
    THRESHOLD_TYPE,
)
from hub.workflows.asb.register import AsbRegister
from hub.workflows.asb.sweep import bodies_for, policy_of

__all__ = ["CaseReport", "case_status", "yearly_figures"]

_PAGE = 10_000


@dataclass(frozen=True)
class CaseReport:
    """A case, its deadlines at ``today`` and the escalations the hub sent."""

    case: Case
    deadlines: tuple[Deadline, ...]
    escalated: tuple[str, ...]
    today: dt.date

    @property
    def overdue(self) -> tuple[Deadline, ...]:
        """Deadlines past their day and not met."""
        return tuple(d for d in self.deadlines if d.overdue(self.today))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (``hub asb status --json``)."""
        c = self.case
        return {
            "case_ref": c.case_ref,
            "applicant_ref": c.applicant_ref,
            "applicant_kind": c.applicant_kind,
            "district": c.district,
            "stage": c.stage,
            "received_on": c.received_on.isoformat(),
            "threshold_met": c.threshold_met,
            "met_by": c.met_by,
            "outcome": c.outcome,
            "appeal_ref": c.appeal_ref,
            "reopened": c.reopened,
            "deadlines": [d.to_json(self.today) for d in self.deadlines],
            "overdue": len(self.overdue),
            "escalated": list(self.escalated),
            "actions": [
                {
                    "action_ref": a.action_ref,
                    "body": a.body,
                    "due_on": a.due_on.isoformat(),
                    "acknowledged_on": a.acknowledged_on.isoformat() if a.acknowledged_on else None,
                    "completed_on": a.completed_on.isoformat() if a.completed_on else None,
                }
                for a in c.actions
            ],
        }


def case_status(
    *,
    register: AsbRegister,
    protocol: Protocol,
    today: dt.date,
    case: str | None = None,
    include_closed: bool = False,
) -> list[CaseReport]:
    """Per case: stage, deadlines, overdue items and escalations."""
    policy = policy_of(protocol)
    if case is not None:
        one = register.case(case)
        cases = [one] if one is not None else []
    else:
        cases = register.cases(include_closed=include_closed)
    return [
        CaseReport(
            case=c,
            deadlines=tuple(
                deadlines(
                    c,
                    bodies=bodies_for(protocol, c.district),
                    coordinator=policy.coordinator,
                    days=policy.working_days,
                )
            ),
            escalated=tuple(
                kind for _, kind in register.alerts(c.case_ref) if kind.endswith("_overdue")
            ),
            today=today,
        )
        for c in cases
    ]


def _delivered_since(store: AuditStore, since: dt.datetime) -> list[AuditRecord]:
    limit = _PAGE
    while True:
        records = store.query(decision=AuditDecision.DELIVERED, since=since, limit=limit)
        if len(records) < limit:
            return records
        limit *= 2


def _met_rules(protocol: Protocol) -> tuple[set[str], set[str]]:
    """Rules for threshold decisions conditioned on ``met`` true, and on ``met`` false."""
    met: set[str] = set()
    not_met: set[str] = set()
    for rule in protocol.rules_for(THRESHOLD_TYPE):
        for cond in rule.when:
            if cond.field == "met" and cond.equals is not None:
                (met if cond.equals else not_met).add(rule.id)
    return met, not_met


def yearly_figures(store: AuditStore, protocol: Protocol, *, year: int) -> dict[str, Any]:
    """The year's ASB Case Review figures from the audit log, for the scrutiny panel.

    An event counts once however many bodies it was delivered to, in the year of its event
    time (when it happened; the record's time if it has none). Only delivered events count: a
    refused application was never shared.
    """
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
    # an event of the year may be recorded a little later; nothing recorded before it counts
    records: Iterable[AuditRecord] = _delivered_since(store, start)
    met_rules, not_met_rules = _met_rules(protocol)
    events: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for record in records:
        event_type = record.event_type or ""
        if not event_type.startswith(ASB_PREFIX):
            continue
        when = record.event_time or record.time
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if not start <= when < end:
            continue
        key = (str(record.publisher), record.event_id)
        events[event_type].add(key)
        if event_type == THRESHOLD_TYPE:
            if record.rule in met_rules:
                events["threshold_met"].add(key)
            elif record.rule in not_met_rules:
                events["threshold_not_met"].add(key)
    return {
        "year": year,
        "protocol": protocol.protocol.id,
        "applications": len(events[APPLICATION_TYPE]),
        "threshold_decisions": len(events[THRESHOLD_TYPE]),
        "thresholds_met": len(events["threshold_met"]),
        "thresholds_not_met": len(events["threshold_not_met"]),
        "outcomes": len(events[OUTCOME_TYPE]),
        "appeals": len(events[APPEAL_TYPE]),
    }
