"""SOCJAG intelligence: grading and handling checks, marks on every audit record.

An item graded under the legacy 5x5x5 system, or a sanitised version of another item, is
routed with a mark saying so on each recipient's audit record (``hub.workflows.socjag``);
an item whose grading or handling the protocol does not allow is refused.
"""

from __future__ import annotations

from hub.models import QuarantineReason
from hub.processes.base import BaseProcess, Checked, EventContext, Refusal, Stores
from hub.workflows.socjag import INTEL, SANITISED, check_intel

__all__ = ["PROCESS", "SocjagProcess"]


class SocjagProcess(BaseProcess):
    """SOCJAG intelligence items and their sanitised versions."""

    name = "socjag"
    event_types = (INTEL, SANITISED)

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """Grading and handling; the marks to record."""
        check = check_intel(ctx.type, ctx.data, ctx.protocol.socjag)
        if check is None:
            return None
        if not check.valid:
            raise Refusal(
                QuarantineReason.POLICY_REJECTED,
                "SOCJAG intelligence refused: " + "; ".join(check.problems),
            )
        return Checked(marks=check.marks)


PROCESS = SocjagProcess()
