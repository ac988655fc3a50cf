"""Who has submitted what for each period, who is late, and the alerts that are due.

Each responsible authority owes its categories (``strategic.submitters``) for every period
from ``strategic.first_period``; a period is due by the end of the next quarter. Pure: the
register's submissions and the day in, states and planned alerts out.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from hub.policies.model import StrategicPolicy
from hub.strategic.dataset import Submission
from hub.strategic.periods import Quarter

__all__ = [
    "ALERT_TYPE",
    "PlannedAlert",
    "SubmitterState",
    "plan_alerts",
    "submitter_states",
    "tracked_periods",
]

ALERT_TYPE = "uk.csp.strategic.alert.v1"
_NS = uuid.UUID("3b0f6a52-9d3e-4c1b-8f27-5e6a1d9c0b44")

State = Literal["complete", "open", "due", "late", "complete_late"]


def tracked_periods(policy: StrategicPolicy, today: dt.date) -> list[Quarter]:
    """Every period from ``first_period`` that has ended by ``today``, oldest first."""
    first = Quarter.parse(policy.first_period)
    current = Quarter.of(today)
    out = []
    period = first
    while period < current:
        out.append(period)
        period = period.next
    return out


@dataclass(frozen=True)
class SubmitterState:
    """One responsible authority's submissions for one period."""

    period: str
    submitter: str
    due_on: dt.date
    expected: tuple[str, ...]
    submitted: dict[str, str]  # category -> received at (ISO 8601)
    state: State

    @property
    def missing(self) -> tuple[str, ...]:
        """Categories owed and not submitted."""
        return tuple(c for c in self.expected if c not in self.submitted)

    def to_json(self) -> dict[str, Any]:
        """As ``hub strategic status --json`` prints it."""
        return {
            "period": self.period,
            "submitter": self.submitter,
            "due_on": self.due_on.isoformat(),
            "state": self.state,
            "submitted": self.submitted,
            "missing": list(self.missing),
        }


def submitter_states(
    policy: StrategicPolicy,
    submissions: Iterable[Submission],
    *,
    today: dt.date,
    periods: Iterable[Quarter] | None = None,
) -> list[SubmitterState]:
    """Per period and submitter: complete, open (not yet due soon), due (soon), or late.

    ``complete_late``: everything arrived, some of it after the due date.
    """
    by_key: dict[tuple[str, str], dict[str, str]] = {}
    for s in submissions:
        by_key.setdefault((s.period, s.submitter), {})[s.category] = s.received_at
    out = []
    for period in periods if periods is not None else tracked_periods(policy, today):
        for submitter, expected in policy.submitters.items():
            got = by_key.get((str(period), submitter), {})
            submitted = {c: got[c] for c in expected if c in got}
            missing = [c for c in expected if c not in got]
            state: State
            if not missing:
                late = any(
                    dt.datetime.fromisoformat(at).date() > period.due for at in submitted.values()
                )
                state = "complete_late" if late else "complete"
            elif today > period.due:
                state = "late"
            elif (period.due - today).days < policy.due_notice_days:
                state = "due"
            else:
                state = "open"
            out.append(
                SubmitterState(str(period), submitter, period.due, expected, submitted, state)
            )
    return out


@dataclass(frozen=True)
class PlannedAlert:
    """An alert to publish: a submitter's period is due soon or late."""

    alert_id: str
    event_id: str
    submitter: str
    period: str
    kind: str
    data: dict[str, Any]


def plan_alerts(
    policy: StrategicPolicy,
    submissions: Iterable[Submission],
    *,
    today: dt.date,
    sent: Callable[[str], bool],
) -> list[PlannedAlert]:
    """The alerts due now that were not sent: one per submitter, period and stage.

    ``submission_due`` when a period is due within ``due_notice_days`` and something is
    missing; ``submission_late`` once it is past due. Ids derive from the stage, the
    submitter and the period, so a sweep run twice sends nothing twice.
    """
    plan = []
    for status in submitter_states(policy, submissions, today=today):
        if status.state not in ("due", "late"):
            continue
        kind = "submission_late" if status.state == "late" else "submission_due"
        stage = "late" if status.state == "late" else "due"
        alert_id = f"S17A-{stage}-{status.period}-{status.submitter}"[:64]
        if sent(alert_id):
            continue
        if kind == "submission_late":
            detail = (
                f"Submit the {status.period} counts now: they were due by {status.due_on} "
                "(Crime and Disorder (Prescribed Information) Regulations 2007)."
            )
        else:
            detail = f"Submit the {status.period} counts by {status.due_on}."
        plan.append(
            PlannedAlert(
                alert_id=alert_id,
                event_id=str(uuid.uuid5(_NS, alert_id)),
                submitter=status.submitter,
                period=status.period,
                kind=kind,
                data={
                    "alert_id": alert_id,
                    "kind": kind,
                    "submitter": status.submitter,
                    "period": status.period,
                    "categories": list(status.missing),
                    "due_on": status.due_on.isoformat(),
                    "detail": detail,
                },
            )
        )
    return plan
