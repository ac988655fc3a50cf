"""Federation's part in the partnership processes (issue 20): ownership, and peers' proofs.

``uk.csp.marac.transfer.ownership.v1`` moves a case between two partnership hubs
(``hub.federation.ownership``). This process records each move once the event was routed:
on the old area's hub (the peer's event: the peer owns the case, ``theirs``) and on the new
area's (its coordinator's event: ``ours``). The router reads the register to stop following
the case to the peer; ``hub federation status`` lists it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.federation.ownership import (
    OWNERSHIP_TYPE,
    OwnershipTaken,
    owned_from,
)
from hub.federation.proofs import PROOF_TYPE, ProofKept
from hub.models import QuarantineReason
from hub.processes.base import BaseProcess, Checked, Effect, EventContext, Refusal, Routed, Stores
from hub.workflows.register import FlagRegister

if TYPE_CHECKING:
    from hub.durable import GroupSync
    from hub.settings import HubSettings

__all__ = ["PROCESS", "FederationProcess", "FlagHandedOver"]


@dataclass(frozen=True, slots=True)
class FlagHandedOver:
    """Effect: the old area's flag for a case a peer took is withdrawn in its flag register.

    Only a flag the register holds (an ownership for a case it never had adds nothing);
    the last event type says why (the ownership event's).
    """

    case_ref: str
    at: dt.datetime
    event_id: str
    event_type: str

    def apply(self, stores: Stores) -> None:
        """Mark the flag withdrawn (an older or repeated event changes nothing)."""
        register = stores.get(FlagRegister)
        if register is None or register.flag(self.case_ref) is None:
            return
        register.record(
            case_ref=self.case_ref,
            subject_ref=None,
            subject_pseudonym=None,
            status="withdrawn",
            review_date=None,
            at=self.at,
            event_id=self.event_id,
            event_type=self.event_type,
        )


class FederationProcess(BaseProcess):
    """Records who owns a transferred case."""

    name = "federation"
    event_types = (OWNERSHIP_TYPE, PROOF_TYPE)

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """A peer takes only a case this hub sent it: else refused, and nobody withdraws.

        A peer's ownership makes this hub withdraw its own flag and tell every holder to
        withdraw theirs, so one for a case the peer never received (a wrong reference, a
        mistaken or hostile peer) would strip a high-risk victim's flag from every system
        while the victim is still here. The peer must be among the case's earlier recipients.
        """
        if ctx.type != OWNERSHIP_TYPE or not ctx.protocol.is_peer(ctx.party):
            return None
        if ctx.case is None or ctx.party not in ctx.holders():
            raise Refusal(
                QuarantineReason.POLICY_REJECTED,
                f"ownership of case {ctx.case} from peer {ctx.party}: expected a case this hub "
                f"transferred to {ctx.party}, got one it never sent there; nothing recorded and "
                "no holder told to withdraw (check the case reference with this partnership's "
                "MARAC coordinator)",
            )
        return None

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """Once routed, a peer's proof is kept; once routed to anyone, a move of ownership.

        Both idempotent. A proof was verified when the router opened it; it is kept only now,
        the event accepted (a proof the protocol refuses, or a repeat, keeps nothing).
        """
        if ctx.type == PROOF_TYPE:
            if not ctx.protocol.is_peer(ctx.party):
                return ()
            return (ProofKept.of(ctx.party, ctx.data),)
        if not routed.delivered or ctx.case is None:
            return ()
        peer = ctx.party if ctx.protocol.is_peer(ctx.party) else None
        taken = OwnershipTaken(owned_from(ctx.id, ctx.data, publisher_peer=peer))
        if peer is None:
            return (taken,)
        # the old area: its own flag for the case ends here (no more reviews or expiries)
        return (taken, FlagHandedOver(ctx.case, at=ctx.now, event_id=ctx.id, event_type=ctx.type))

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The ownership and proof registers, shared like the others (only with peers)."""
        from hub.policies.loader import load_protocol
        from hub.state import open_ownership_register, open_proof_register

        if not load_protocol(settings.protocol).peers:
            return ()
        return (
            open_ownership_register(settings, group=group),
            open_proof_register(settings, group=group),
        )


PROCESS = FederationProcess()
