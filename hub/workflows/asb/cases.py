"""One ASB Case Review's stages and deadlines, as pure functions of what the hub recorded.

Stages: ``received`` (application in, threshold not yet decided), ``review`` (threshold met,
the case review meeting to hold), ``actions`` (outcome given, recommended actions open),
``appeal`` (the applicant appealed, to the PCC in the reference protocol: the case is
reopened until the appeal's outcome) and ``closed`` (threshold not met, or every action done).

Deadlines are the protocol's timescales in working days (``asb.working_days``, England and
Wales bank holidays skipped, ``hub.workflows.asb.days``): acknowledgement, each body's answer,
the threshold decision and the meeting count from the day the application was received; a
body acknowledges a recommended action within ``action_acknowledge`` of the outcome and
completes it by the date the review set; the appeal is reviewed within ``appeal_review`` of
being lodged. A deadline is overdue the working day after its due date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.policies.model import AsbTimescales
from hub.workflows.asb.days import add_working_days

__all__ = ["STAGES", "Action", "Case", "Deadline", "Stage", "deadlines", "stage_after"]

Stage = Literal["received", "review", "actions", "appeal", "closed"]
STAGES: tuple[Stage, ...] = ("received", "review", "actions", "appeal", "closed")


@dataclass(frozen=True)
class Action:
    """A recommendation of the review, owned by one relevant body."""

    action_ref: str
    body: str
    action: str
    due_on: dt.date
    set_on: dt.date
    acknowledged_on: dt.date | None = None
    completed_on: dt.date | None = None


@dataclass(frozen=True)
class Case:
    """What the hub knows of one case: dates and references, never the applicant's identity."""

    case_ref: str
    applicant_ref: str
    applicant_kind: str
    district: str
    received_on: dt.date
    stage: Stage
    acknowledged_on: dt.date | None = None
    decided_on: dt.date | None = None
    threshold_met: bool | None = None
    met_by: str | None = None
    meeting_on: dt.date | None = None
    outcome: str | None = None
    outcome_on: dt.date | None = None
    appeal_ref: str | None = None
    appealed_on: dt.date | None = None
    appeal_decided_on: dt.date | None = None
    reopened: int = 0
    answers: Mapping[str, dt.date] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Deadline:
    """One timescale of a case: what, for whom, by when, and when it was met."""

    kind: str
    party: str
    due_on: dt.date
    done_on: dt.date | None
    what: str

    def overdue(self, today: dt.date) -> bool:
        """Not met, and its day has passed."""
        return self.done_on is None and today > self.due_on

    @property
    def late(self) -> bool:
        """Met, but after its day."""
        return self.done_on is not None and self.done_on > self.due_on

    def to_json(self, today: dt.date) -> dict[str, Any]:
        """JSON-ready (``hub asb status --json``)."""
        return {
            "kind": self.kind,
            "party": self.party,
            "what": self.what,
            "due_on": self.due_on.isoformat(),
            "done_on": self.done_on.isoformat() if self.done_on else None,
            "overdue": self.overdue(today),
            "late": self.late,
        }


def deadlines(
    case: Case, *, bodies: Collection[str], coordinator: str, days: AsbTimescales
) -> list[Deadline]:
    """Every deadline that applies to the case at its stage, in order of their due dates.

    ``bodies``: the relevant bodies that must answer for this case (its district's).
    """
    start = case.received_on
    out = [
        Deadline(
            "acknowledge",
            coordinator,
            add_working_days(start, days.acknowledge),
            case.acknowledged_on,
            f"acknowledge the application within {days.acknowledge} working days",
        )
    ]
    for body in sorted(bodies):
        out.append(
            Deadline(
                "answer",
                body,
                add_working_days(start, days.answers),
                case.answers.get(body),
                f"answer with its complaints within {days.answers} working days",
            )
        )
    out.append(
        Deadline(
            "decision",
            coordinator,
            add_working_days(start, days.decision),
            case.decided_on,
            f"threshold decision within {days.decision} working days",
        )
    )
    if case.threshold_met:
        # a threshold met only on appeal: the meeting counts from the appeal's outcome
        meeting_from = (
            case.appeal_decided_on
            if case.met_by == "appeal" and case.appeal_decided_on is not None
            else start
        )
        out.append(
            Deadline(
                "meeting",
                coordinator,
                add_working_days(meeting_from, days.meeting),
                case.meeting_on,
                f"case review meeting within {days.meeting} working days",
            )
        )
    if case.appealed_on is not None:
        out.append(
            Deadline(
                "appeal_review",
                coordinator,
                add_working_days(case.appealed_on, days.appeal_review),
                case.appeal_decided_on,
                f"review of appeal {case.appeal_ref} within {days.appeal_review} working days",
            )
        )
    for action in case.actions:
        out.append(
            Deadline(
                "action_acknowledge",
                action.body,
                add_working_days(action.set_on, days.action_acknowledge),
                action.acknowledged_on or action.completed_on,
                f"acknowledge action {action.action_ref} within {days.action_acknowledge} "
                "working days",
            )
        )
        out.append(
            Deadline(
                "action_complete",
                action.body,
                action.due_on,
                action.completed_on,
                f"complete action {action.action_ref} by {action.due_on}",
            )
        )
    return sorted(out, key=lambda d: (d.due_on, d.kind, d.party))


def stage_after(case: Case) -> Stage:
    """The stage a case is at, from what has happened to it."""
    if case.appealed_on is not None and case.appeal_decided_on is None:
        return "appeal"
    if case.decided_on is None:
        return "received"
    if not case.threshold_met and case.appealed_on is None:
        return "closed"
    if case.outcome_on is None:
        return "review"
    if any(a.completed_on is None for a in case.actions):
        return "actions"
    return "closed"
