"""ASB Case Review as a process (ASB, Crime and Policing Act 2014 s104 and Sch 4).

Owns ``uk.csp.asb.review.*``. Before the decision it refuses what would put the case
register out of step with the case: a second application for a case, an event for a case
with no application, an event whose district is not the case's (the rules route by it), an
answer from a body that is not a relevant body of the case, an outcome before the threshold
is met, an action the review did not recommend to that body. After the decision its effects
keep the register (``hub.workflows.asb.register``) in step. Its sweep decides thresholds and
escalates missed deadlines (``hub.workflows.asb.sweep``); ``hub asb`` and the console's
ASB Case Reviews page show cases, stages, deadlines and overdue items.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.models import QuarantineReason
from hub.processes.base import (
    BaseProcess,
    Checked,
    CliGroup,
    ConsolePage,
    Effect,
    EventContext,
    Refusal,
    Routed,
    Stores,
    Sweep,
)
from hub.state import open_asb_register
from hub.workflows.asb.cases import Action, Case
from hub.workflows.asb.events import (
    ACK_TYPE,
    ACTION_TYPE,
    ALERT_TYPE,
    APPEAL_TYPE,
    APPLICATION_TYPE,
    COMPLAINTS_TYPE,
    OUTCOME_TYPE,
    THRESHOLD_TYPE,
)
from hub.workflows.asb.register import AsbRegister
from hub.workflows.asb.threshold import Complaint

if TYPE_CHECKING:
    from hub.durable import GroupSync
    from hub.policies.model import Protocol
    from hub.settings import HubSettings

__all__ = ["PROCESS", "AsbProcess"]


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _refuse(detail: str) -> Refusal:
    return Refusal(QuarantineReason.POLICY_REJECTED, f"ASB case review: {detail}")


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseOpened:
    """An application: the case starts."""

    event_id: str
    case_ref: str
    applicant_ref: str
    applicant_kind: str
    district: str
    received_on: dt.date

    def apply(self, stores: Stores) -> None:
        """Open the case in the register."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.open_case(
                event_id=self.event_id,
                case_ref=self.case_ref,
                applicant_ref=self.applicant_ref,
                applicant_kind=self.applicant_kind,
                district=self.district,
                received_on=self.received_on,
            )


@dataclass(frozen=True, slots=True)
class CaseChanged:
    """Dates and results of a case (acknowledged, threshold decided)."""

    event_id: str
    case_ref: str
    changes: tuple[tuple[str, Any], ...]

    def apply(self, stores: Stores) -> None:
        """Set them in the register."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.record(event_id=self.event_id, case_ref=self.case_ref, **dict(self.changes))


@dataclass(frozen=True, slots=True)
class BodyAnswered:
    """A relevant body's complaints."""

    event_id: str
    case_ref: str
    body: str
    answered_on: dt.date
    complaints: tuple[Complaint, ...]

    def apply(self, stores: Stores) -> None:
        """Keep the answer and its complaints."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.answer(
                event_id=self.event_id,
                case_ref=self.case_ref,
                body=self.body,
                answered_on=self.answered_on,
                complaints=self.complaints,
            )


@dataclass(frozen=True, slots=True)
class OutcomeGiven:
    """The review's (or the appeal's) outcome and its actions."""

    event_id: str
    case_ref: str
    outcome: str
    outcome_on: dt.date
    meeting_on: dt.date | None
    appeal: bool
    actions: tuple[Action, ...]

    def apply(self, stores: Stores) -> None:
        """Record the outcome; the case moves to actions or closes."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.outcome(
                event_id=self.event_id,
                case_ref=self.case_ref,
                outcome=self.outcome,
                outcome_on=self.outcome_on,
                meeting_on=self.meeting_on,
                appeal=self.appeal,
                actions=self.actions,
            )


@dataclass(frozen=True, slots=True)
class ActionUpdated:
    """A body acknowledged or completed an action."""

    event_id: str
    case_ref: str
    action_ref: str
    status: str
    on: dt.date

    def apply(self, stores: Stores) -> None:
        """Record it against the action."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.action_update(
                event_id=self.event_id,
                case_ref=self.case_ref,
                action_ref=self.action_ref,
                status=self.status,
                on=self.on,
            )


@dataclass(frozen=True, slots=True)
class Appealed:
    """An appeal reopens the case."""

    event_id: str
    case_ref: str
    appeal_ref: str
    lodged_on: dt.date

    def apply(self, stores: Stores) -> None:
        """Reopen the case."""
        reg = stores.get(AsbRegister)
        if reg is not None:
            reg.appeal(
                event_id=self.event_id,
                case_ref=self.case_ref,
                appeal_ref=self.appeal_ref,
                lodged_on=self.lodged_on,
            )


# -- the process ------------------------------------------------------------------------------


def _bodies(ctx: EventContext, district: str) -> set[str]:
    asb = ctx.protocol.asb
    role = asb.body_role if asb is not None else "asb-relevant-body"
    return {
        p.id for p in ctx.protocol.parties if p.has_role(role) and p.district in (None, district)
    }


def check_event(ctx: EventContext, case: Case | None) -> None:
    """Refuse an event that does not fit its case (``case``: the register's, if known)."""
    data = ctx.data
    ref = str(data.get("case_ref"))
    if ctx.type == APPLICATION_TYPE:
        if case is not None:
            raise _refuse(
                f"case {ref} already has an application (received {case.received_on}): "
                "expected a new case reference, or an appeal for this one"
            )
        return
    if ctx.type in (ALERT_TYPE, THRESHOLD_TYPE) and ctx.party == "hub":
        return
    if case is None:
        raise _refuse(f"case {ref} has no application: publish {APPLICATION_TYPE} for it first")
    if data.get("district") != case.district:
        raise _refuse(
            f"district of case {ref}: expected {case.district}, got {data.get('district')}"
        )
    if ctx.type == COMPLAINTS_TYPE:
        asb = ctx.protocol.asb
        party = ctx.protocol.party(ctx.party)
        if asb is not None and party is not None and party.district not in (None, case.district):
            raise _refuse(
                f"{ctx.party} is a relevant body for {party.district}, not for case {ref} in "
                f"{case.district}: expected an answer from that district's bodies"
            )
        for c in data.get("complaints") or ():
            if _date(c["reported_on"]) < _date(c["incident_on"]):
                raise _refuse(
                    f"complaint {c['reference']} of case {ref}: expected a report on or after "
                    f"the incident ({c['incident_on']}), got {c['reported_on']}"
                )
    elif ctx.type == OUTCOME_TYPE:
        appeal_ref = data.get("appeal_ref")
        if appeal_ref is not None:
            if case.stage != "appeal" or appeal_ref != case.appeal_ref:
                raise _refuse(
                    f"outcome of appeal {appeal_ref}: expected an open appeal of case {ref} "
                    f"(open: {case.appeal_ref if case.stage == 'appeal' else 'none'})"
                )
        elif not case.threshold_met:
            raise _refuse(
                f"outcome of case {ref}: expected the threshold met first, got "
                f"{'not met' if case.threshold_met is False else 'no threshold decision yet'}"
            )
        bodies = _bodies(ctx, case.district)
        for rec in data.get("recommendations") or ():
            if rec["body"] not in bodies:
                raise _refuse(
                    f"recommendation {rec['action_ref']} of case {ref}: expected one of the "
                    f"case's relevant bodies ({', '.join(sorted(bodies))}), got {rec['body']}"
                )
    elif ctx.type == ACTION_TYPE:
        action = next((a for a in case.actions if a.action_ref == data.get("action_ref")), None)
        if action is None or action.body != ctx.party:
            raise _refuse(
                f"action {data.get('action_ref')} of case {ref}: expected an action the review "
                f"recommended to {ctx.party}, got "
                f"{'one for ' + action.body if action else 'no such action'}"
            )
    elif ctx.type == APPEAL_TYPE and case.decided_on is None:
        raise _refuse(f"appeal of case {ref}: expected a threshold decision to appeal against")


def effects_for(ctx: EventContext) -> list[Effect]:
    """The register updates an ASB event makes once it is routed."""
    data = ctx.data
    ref = str(data.get("case_ref"))
    if ctx.type == APPLICATION_TYPE:
        return [
            CaseOpened(
                event_id=ctx.id,
                case_ref=ref,
                applicant_ref=str(data["applicant_ref"]),
                applicant_kind=str(data["applicant_kind"]),
                district=str(data["district"]),
                received_on=_date(data["received_on"]),
            )
        ]
    if ctx.type == ACK_TYPE:
        acknowledged = _date(data["acknowledged_on"])
        return [CaseChanged(ctx.id, ref, (("acknowledged_on", acknowledged),))]
    if ctx.type == COMPLAINTS_TYPE:
        complaints = tuple(
            Complaint(
                body=ctx.party,
                reference=str(c["reference"]),
                reported_on=_date(c["reported_on"]),
                incident_on=_date(c["incident_on"]),
                complainant=str(c["complainant_ref"]),
                action_taken=str(c.get("action_taken") or ""),
            )
            for c in data.get("complaints") or ()
        )
        return [BodyAnswered(ctx.id, ref, ctx.party, ctx.now.date(), complaints)]
    if ctx.type == THRESHOLD_TYPE:
        changes = (
            ("decided_on", _date(data["decided_on"])),
            ("threshold_met", bool(data["met"])),
            ("met_by", data.get("met_by")),
        )
        return [CaseChanged(ctx.id, ref, changes)]
    if ctx.type == OUTCOME_TYPE:
        decided = _date(data["decided_on"])
        actions = tuple(
            Action(
                action_ref=str(r["action_ref"]),
                body=str(r["body"]),
                action=str(r["action"]),
                due_on=_date(r["due_on"]),
                set_on=decided,
            )
            for r in data.get("recommendations") or ()
        )
        meeting = data.get("meeting_on")
        return [
            OutcomeGiven(
                event_id=ctx.id,
                case_ref=ref,
                outcome=str(data["outcome"]),
                outcome_on=decided,
                meeting_on=_date(meeting) if meeting else None,
                appeal=data.get("appeal_ref") is not None,
                actions=actions,
            )
        ]
    if ctx.type == ACTION_TYPE:
        return [
            ActionUpdated(
                ctx.id, ref, str(data["action_ref"]), str(data["status"]), _date(data["on"])
            )
        ]
    if ctx.type == APPEAL_TYPE:
        return [Appealed(ctx.id, ref, str(data["appeal_ref"]), _date(data["lodged_on"]))]
    return []


class AsbProcess(BaseProcess):
    """ASB Case Reviews: the register, its checks, the sweep, ``hub asb`` and the console."""

    name = "asb"
    event_types = ("uk.csp.asb.review.*",)

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """Refuse an event that does not fit its case (skipped without the register)."""
        reg = stores.get(AsbRegister)
        if reg is None or ctx.protocol.asb is None:
            return None
        ref = str(ctx.data.get("case_ref"))
        if reg.applied(ctx.id, ref):
            # a reprocess (after a crash, before the batch's acks): it passed when first
            # routed, and the case now holds its updates (an application finds its own
            # case open), perhaps later events' too
            return None
        check_event(ctx, reg.case(ref))
        return None

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """The register updates, as effects."""
        if ctx.protocol.asb is None:
            return ()
        return effects_for(ctx)

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The ASB Case Review register: the workflow registers' file, or ``HUB_STATE_URL``."""
        return [open_asb_register(settings, group=group)]

    def sweeps(self, protocol: Protocol) -> Sequence[Sweep]:
        """Threshold decisions and escalations (``hub asb sweep``)."""
        if protocol.asb is None:
            return []
        from hub.workflows.asb.sweep import sweep_asb

        return [Sweep("asb_sweep", sweep_asb)]

    def cli(self) -> Sequence[CliGroup]:
        """``hub asb status|sweep|report``."""
        from hub.cli import asb

        return [CliGroup("asb", asb.app)]

    def console(self) -> Sequence[ConsolePage]:
        """The console's ASB Case Reviews page."""
        from hub.web import pages_asb

        return [pages_asb.page()]


PROCESS = AsbProcess()
