"""Pub Watch bans and retail exclusions: one ban in force per reference, reviews, expiries.

Before the decision: a new ban while one with the same reference is in force is refused
(``check_ban_start``), and so is a review earlier than the protocol allows
(``check_ban_update``). After it: the ban register follows the event (``BanRecorded``),
so the hub can send the expiry at the ban's end (``hub pubwatch sweep``). The member that
published a ban holds it too, for corrections (Art 19).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.models import QuarantineReason
from hub.processes.base import (
    BaseProcess,
    Checked,
    CliGroup,
    Effect,
    EventContext,
    Refusal,
    Routed,
    Stores,
    Sweep,
)
from hub.state import open_ban_register
from hub.workflows.bans import (
    UPDATED_TYPE,
    BanRegister,
    check_ban_start,
    check_ban_update,
    is_ban_start,
)

if TYPE_CHECKING:
    from hub.durable import GroupSync
    from hub.policies.model import Protocol
    from hub.settings import HubSettings

__all__ = ["PROCESS", "BanRecorded", "PubWatchProcess"]


@dataclass(frozen=True, slots=True)
class BanRecorded:
    """A routed ban event applied to the ban register (``BanRegister.record``)."""

    event_type: str
    data: dict[str, Any]
    publisher: str
    at: dt.datetime
    event_id: str

    def apply(self, stores: Stores) -> None:
        """Write it (an older or repeated event changes nothing)."""
        bans = stores.get(BanRegister)
        if bans is not None:
            bans.record(
                self.event_type,
                self.data,
                publisher=self.publisher,
                at=self.at,
                event_id=self.event_id,
            )


class PubWatchProcess(BaseProcess):
    """Pub Watch bans and retail exclusions."""

    name = "pubwatch"
    event_types = ("uk.csp.pubwatch.ban.*", "uk.csp.retail.exclusion.*")

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """No early review; no second ban while one is in force."""
        bans = stores.get(BanRegister)
        policy = ctx.protocol.pubwatch
        if policy is not None and ctx.type == UPDATED_TYPE:
            known = bans.ban(str(ctx.data.get("ban_ref"))) if bans is not None else None
            problems = check_ban_update(ctx.data, policy, known=known, today=ctx.now.date())
            if problems:
                raise Refusal(
                    QuarantineReason.POLICY_REJECTED,
                    "ban update refused: " + "; ".join(problems),
                )
        if bans is not None and is_ban_start(ctx.type):
            ref = str(ctx.data.get("ban_ref"))
            problem = check_ban_start(
                ctx.type,
                ref,
                known=bans.ban(ref),
                started_here=bans.started_by(ctx.id, ref),
                today=ctx.now.date(),
            )
            if problem is not None:
                raise Refusal(QuarantineReason.POLICY_REJECTED, problem)
        return None

    def also_holding(self, ctx: EventContext, stores: Stores) -> Collection[str]:
        """The member that published the ban holds it too (for corrections)."""
        bans = stores.get(BanRegister)
        known = bans.ban(ctx.case) if bans is not None and ctx.case is not None else None
        return (known.publisher,) if known is not None else ()

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """Keep the ban register in step (the hub sends the expiry at the ban's end)."""
        if ctx.case is None:
            return ()
        return [
            BanRecorded(
                event_type=ctx.type,
                data=ctx.data,
                publisher=ctx.party,
                at=ctx.now,
                event_id=ctx.id,
            )
        ]

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The ban register (``workflows.sqlite3``, or ``HUB_STATE_URL``'s database)."""
        return [open_ban_register(settings, group=group)]

    def sweeps(self, protocol: Protocol) -> Sequence[Sweep]:
        """Expiries at each ban's end (``hub pubwatch sweep``)."""
        if protocol.pubwatch is None:
            return ()
        from hub.workflows.pubwatch import sweep_bans

        return [Sweep("pubwatch_sweep", sweep_bans)]

    def cli(self) -> Sequence[CliGroup]:
        """``hub pubwatch``."""
        from hub.cli import pubwatch

        return [CliGroup("pubwatch", pubwatch.app)]


PROCESS = PubWatchProcess()
