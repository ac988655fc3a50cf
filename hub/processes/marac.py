"""MARAC: flags (raise, update, review, withdraw, expire), referrals, repeats, health access.

Before the decision: a raise of a flag still active is refused (``check_raise``), a raise is
held to the SafeLives referral criteria and an update may not lower the DASH level
(``hub.workflows.referral``), and a CP-IS access notice is accepted only from a setting that
holds the case's flag (``hub.workflows.health``). After it: the flag register follows the
lifecycle event, and a raise is kept as a referral (``FlagRecorded``, ``ReferralAdded``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.models import QuarantineReason
from hub.processes.base import (
    BaseProcess,
    Checked,
    CliGroup,
    ConsolePage,
    Effect,
    EventContext,
    NavEntry,
    Refusal,
    Routed,
    Stores,
    Sweep,
)
from hub.state import open_flag_register
from hub.workflows.health import ACCESS_TYPE, check_access
from hub.workflows.referral import ReferralCheck, check_referral, check_update
from hub.workflows.register import FlagRegister, FlagStatus, Referral, check_raise

if TYPE_CHECKING:
    from hub.durable import GroupSync
    from hub.policies.model import Protocol
    from hub.settings import HubSettings

__all__ = ["PROCESS", "FlagRecorded", "MaracProcess", "ReferralAdded"]

FLAG_PREFIX = "uk.csp.marac.flag."
_RAISED = f"{FLAG_PREFIX}raised."
_UPDATED = f"{FLAG_PREFIX}updated."


@dataclass(frozen=True, slots=True)
class ReferralAdded:
    """A raise, kept as a referral (``FlagRegister.add_referral``; idempotent by event id)."""

    referral: Referral

    def apply(self, stores: Stores) -> None:
        """Write it to the flag register."""
        register = stores.get(FlagRegister)
        if register is not None:
            register.add_referral(self.referral)


@dataclass(frozen=True, slots=True)
class FlagRecorded:
    """A lifecycle event applied to the case's flag (``FlagRegister.record``)."""

    case_ref: str
    subject_ref: str | None
    subject_pseudonym: str | None
    status: FlagStatus
    review_date: dt.date | None
    at: dt.datetime
    event_id: str
    event_type: str

    def apply(self, stores: Stores) -> None:
        """Write it to the flag register (an older or repeated event changes nothing)."""
        register = stores.get(FlagRegister)
        if register is not None:
            register.record(
                case_ref=self.case_ref,
                subject_ref=self.subject_ref,
                subject_pseudonym=self.subject_pseudonym,
                status=self.status,
                review_date=self.review_date,
                at=self.at,
                event_id=self.event_id,
                event_type=self.event_type,
            )


@dataclass(frozen=True, slots=True)
class _Carry:
    check: ReferralCheck
    last: Referral | None


class MaracProcess(BaseProcess):
    """MARAC flags and referrals, and the health settings' access notices."""

    name = "marac"
    event_types = (f"{FLAG_PREFIX}*", ACCESS_TYPE)

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """Access notices from holders only; no second raise; SafeLives criteria."""
        if ctx.type == ACCESS_TYPE:
            problem = check_access(ctx.party, ctx.case, ctx.holders())
            if problem is not None:
                raise Refusal(QuarantineReason.NOT_A_RECIPIENT, problem)
            return None
        register = stores.get(FlagRegister)
        raised = ctx.type.startswith(_RAISED)
        if register is not None and ctx.case and raised:
            problem = check_raise(
                ctx.case,
                flag=register.flag(ctx.case),
                raises=register.raises(ctx.case),
                event_id=ctx.id,
            )
            if problem is not None:
                raise Refusal(QuarantineReason.POLICY_REJECTED, problem)
        policy = ctx.protocol.marac
        if policy is None:
            return None
        if ctx.type.startswith(_UPDATED):
            problems = check_update(ctx.data, policy)
            if problems:
                raise Refusal(
                    QuarantineReason.POLICY_REJECTED,
                    "MARAC flag update refused (SafeLives criteria): " + "; ".join(problems),
                )
            return None
        if not raised:
            return None
        subject = ctx.subject()
        last = (
            register.last_referral(subject, other_than=ctx.id)
            if register is not None and subject is not None
            else None
        )
        check = check_referral(
            ctx.data, policy, now=ctx.now, last_referral=last.referred_at if last else None
        )
        if not check.valid:
            raise Refusal(
                QuarantineReason.POLICY_REJECTED,
                "invalid MARAC referral (SafeLives criteria): " + "; ".join(check.problems),
            )
        return Checked(carry=_Carry(check, last))

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """The flag register follows the lifecycle event; a raise is kept as a referral."""
        case = ctx.case
        if case is None or not ctx.type.startswith(FLAG_PREFIX):
            return ()
        stage = ctx.type.removeprefix(FLAG_PREFIX).split(".", 1)[0]
        status: FlagStatus = (
            "withdrawn" if stage == "withdrawn" else "expired" if stage == "expired" else "active"
        )
        review = ctx.data.get("review_date") if stage != "expired" else None
        subject = ctx.subject()
        effects: list[Effect] = []
        if stage == "raised" and subject is not None:
            # the check's lookup: nothing was written for this event since
            checked = carry if isinstance(carry, _Carry) else None
            last = checked.last if checked is not None else None
            effects.append(
                ReferralAdded(
                    Referral(
                        event_id=ctx.id,
                        case_ref=case,
                        subject_pseudonym=subject,
                        referred_at=ctx.now,
                        reason=str(ctx.data.get("referral_reason", "")),
                        repeat_of=last.event_id
                        if last is not None and checked is not None and checked.check.repeat
                        else None,
                    )
                )
            )
        subject_ref = ctx.data.get("subject_ref")
        effects.append(
            FlagRecorded(
                case_ref=case,
                subject_ref=str(subject_ref) if subject_ref else None,
                subject_pseudonym=subject,
                status=status,
                review_date=dt.date.fromisoformat(str(review)) if review else None,
                at=ctx.now,
                event_id=ctx.id,
                event_type=ctx.type,
            )
        )
        return effects

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The flag register (``workflows.sqlite3``, or ``HUB_STATE_URL``'s database)."""
        return [open_flag_register(settings, group=group)]

    def sweeps(self, protocol: Protocol) -> Sequence[Sweep]:
        """Reviews, expiries and acknowledgement escalations (``hub marac sweep``)."""
        if protocol.marac is None:
            return ()
        from hub.workflows.sweep import sweep_once  # the client side of the hub

        return [Sweep("marac_sweep", sweep_once)]

    def cli(self) -> Sequence[CliGroup]:
        """``hub marac``."""
        from hub.cli import marac

        return [CliGroup("marac", marac.app)]

    def console(self) -> Sequence[ConsolePage]:
        """The MARAC board, for IG officers and MARAC coordinators."""
        from hub.web import pages_marac

        roles = frozenset({"ig-officer", "marac-coordinator"})
        return [ConsolePage(pages_marac.router, (NavEntry("/marac", "MARAC board", roles),))]


PROCESS = MaracProcess()
