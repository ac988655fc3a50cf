"""What a publisher can know before it produces: the refusals that need no hub state.

The hub refuses an event for reasons of two kinds. Some depend only on the event and the
protocol: who may publish the type, the protocol's own rejections, the SafeLives criteria a
referral must meet whatever the subject's history, the SOCJAG grading rules. Others depend
on what the hub has seen: a repeated event id, a flag already raised, a ban's start date.
``local_refusal`` checks the first kind with the same pure functions the router uses, so the
CLI and the SDK (``HubClient(..., protocol=...)``) refuse such an event before it leaves,
with the hub's own reason, instead of printing an id the hub then quarantines. The second
kind only the hub can judge; ``hub publish`` waits for its decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from hub.policies.engine import evaluate
from hub.policies.model import Protocol
from hub.workflows.referral import check_referral, check_update
from hub.workflows.socjag import check_intel

__all__ = ["local_refusal"]

_RAISED = "uk.csp.marac.flag.raised."
_UPDATED = "uk.csp.marac.flag.updated."


def local_refusal(
    protocol: Protocol,
    *,
    publisher: str,
    event_type: str,
    event_id: str,
    data: Mapping[str, Any],
    now: dt.datetime,
) -> str | None:
    """Why the hub would refuse this event whatever its state; None when it may be sent.

    ``data`` is the payload as the router sees it: decoded from the Avro just encoded
    (``to_jsonable``), defaults filled in.
    """
    decision = evaluate(
        protocol,
        event_id=event_id,
        event_type=event_type,
        publisher=publisher,
        data=data,
        today=now.date(),
    )
    if decision.rejected:
        return decision.reject_reason or f"{publisher} may not publish {event_type}"
    problems: list[str] = []
    if protocol.marac is not None and event_type.startswith(_RAISED):
        # The hub knows when the subject was last referred; the publisher does not. Only
        # problems found both as a first referral and as a repeat hold whatever that history.
        first = check_referral(data, protocol.marac, now=now, last_referral=None)
        repeat = check_referral(data, protocol.marac, now=now, last_referral=now)
        always = [p for p in first.problems if p in repeat.problems]
        if always:
            problems.append("invalid MARAC referral (SafeLives criteria): " + "; ".join(always))
    if protocol.marac is not None and event_type.startswith(_UPDATED):
        # an update cannot lower a DASH-based level whatever the hub has seen (issue 17)
        lowered = check_update(data, protocol.marac)
        if lowered:
            problems.append("MARAC flag update refused (SafeLives criteria): " + "; ".join(lowered))
    intel = check_intel(event_type, data, protocol.socjag)
    if intel is not None and intel.problems:
        problems.append("SOCJAG intelligence refused: " + "; ".join(intel.problems))
    return "; ".join(problems) or None
