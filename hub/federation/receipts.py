"""Receipts for Marac-to-Marac transfers (issue 20): the receiving hub tells the sender.

When a hub routes a transfer from a peer (``hub.federation.inbound``) and its protocol
delivered it to its MARAC coordinator, it sends ``uk.csp.marac.transfer.receipt.v1`` back on
``hub.out.<peer>`` (the peer's link carries it home), sealed to the peer hub and signed by
this one, naming its audit record of that delivery; and a second one (``acknowledged``) when
its coordinator acknowledges the transfer. The sender's router opens each as an event from
its peer, like a transfer, and its protocol routes it (to its own coordinator) and audits
it; ``hub federation status`` finds them by their derived ids (``receipt_id``).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from typing import Any

from hub.models import AuditDecision, AuditRecord
from hub.policies.model import Protocol

__all__ = ["RECEIPT_TYPE", "acknowledged_bodies", "receipt_body", "receipt_id"]

RECEIPT_TYPE = "uk.csp.marac.transfer.receipt.v1"
_NS = uuid.UUID("2b0d7f55-4a5e-4f1c-9a7e-6c1d3e9f0a42")
#: the schema's hub_pattern on case_ref
_CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/:.]{1,63}$")


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


def acknowledged_bodies(
    protocol: Protocol,
    *,
    case_ref: str | None,
    audit: Sequence[AuditRecord],
    now: dt.datetime,
) -> list[tuple[str, dict[str, Any]]]:
    """(peer, receipt) for each peer's transfer this coordinator's acknowledgement names.

    ``audit`` is the acknowledgement's records (``Router._acknowledge``); ``case_ref`` the
    acknowledgement's Kafka key (the SDK sends the delivery's key, the case reference).
    """
    coordinator = protocol.marac.coordinator if protocol.marac is not None else None
    hub_id = protocol.protocol.hub_id
    if coordinator is None or hub_id is None or not case_ref or not _CASE_REF.match(case_ref):
        return []
    return [
        (
            record.publisher,
            {
                "case_ref": case_ref,
                "transfer_event_id": record.event_id,
                "state": "acknowledged",
                "receiver": hub_id,
                "coordinator": coordinator,
                "audit_record": record.record_id,
                "received_at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            },
        )
        for record in audit
        if record.decision is AuditDecision.ACKNOWLEDGED
        and record.recipient == coordinator
        and record.publisher is not None
        and protocol.is_peer(record.publisher)
    ]
