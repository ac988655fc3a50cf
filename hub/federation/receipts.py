"""Receipts for Marac-to-Marac transfers (issue 20): the receiving hub tells the sender.

When a hub routes a transfer from a peer (``hub.federation.inbound``) and its protocol
delivered it to its MARAC coordinator, it sends ``uk.csp.marac.transfer.receipt.v1`` back on
``hub.out.<peer>`` (the peer's link carries it home), sealed to the peer hub and signed by
this one, naming its audit record of that delivery. The sender's router opens it as an event
from its peer, like a transfer, and its protocol routes it (to its own coordinator) and
audits it; ``hub federation status`` finds it by its derived id (``receipt_id``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from hub.models import AuditDecision, AuditRecord
from hub.policies.model import Protocol

__all__ = ["RECEIPT_TYPE", "receipt_body", "receipt_id"]

RECEIPT_TYPE = "uk.csp.marac.transfer.receipt.v1"
_NS = uuid.UUID("2b0d7f55-4a5e-4f1c-9a7e-6c1d3e9f0a42")


def receipt_id(transfer_event_id: str, state: str = "received") -> str:
    """The receipt's event id: derived, so the sender can look it up and a re-route repeats it."""
    return str(uuid.uuid5(_NS, f"{transfer_event_id} {state}"))


def receipt_body(
    protocol: Protocol,
    *,
    transfer_event_id: str,
    data: dict[str, Any],
    audit: Sequence[AuditRecord],
    now: dt.datetime,
) -> dict[str, Any] | None:
    """The receipt for a routed transfer, or None when its coordinator was not delivered it."""
    coordinator = protocol.marac.coordinator if protocol.marac is not None else None
    delivered = next(
        (r for r in audit if r.recipient == coordinator and r.decision is AuditDecision.DELIVERED),
        None,
    )
    case = data.get("case_ref")
    if delivered is None or protocol.protocol.hub_id is None or not isinstance(case, str):
        return None
    return {
        "case_ref": case,
        "transfer_event_id": transfer_event_id,
        "state": "received",
        "receiver": protocol.protocol.hub_id,
        "coordinator": coordinator,
        "audit_record": delivered.record_id,
        "received_at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
