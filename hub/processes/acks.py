"""Acknowledgements: a recipient's receipt for a delivery, audited against what it names.

Every delivery a party receives from another party wants one (``Delivery.wants_ack``);
``HubClient.acknowledge`` sends it as ``uk.csp.delivery.ack.v1``. The router hands it here
instead of to the protocol's decision: a receipt discloses nothing, it puts an
``acknowledged`` record on the audit log, which MARAC's acknowledgement status and
escalations read (``hub.workflows.marac``).

Only a party the event was delivered to may acknowledge it: anyone else's receipt would put a
disclosure that never happened on the record (``not_a_recipient``). Each status
(``received``, then ``actioned``) is a record of its own: the status is in the record id, so a
later status is never taken for a repeat of an earlier one.

The acknowledgement names the event by id alone (the schema has no source); the party's own
deliveries say whose event it is. The record's ``publisher`` is that event's publisher, so the
records of two parties' events with one id never merge; ``recipient`` is the acknowledging
party.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hub.models import (
    ACK_TYPE,
    AuditDecision,
    AuditRecord,
    InboundEvent,
    QuarantineReason,
    record_id_for,
)
from hub.processes.base import Refusal

__all__ = ["ACK_TYPE", "acknowledgement_records"]

#: (event id, party) -> publisher -> event type of each event with that id delivered to party
DeliveredTo = Callable[[str, str], dict[str, str | None]]


def acknowledgement_records(
    event: InboundEvent, *, delivered_to: DeliveredTo, common: Mapping[str, Any]
) -> list[AuditRecord]:
    """The ``acknowledged`` audit records of one receipt; a Refusal if it names no delivery.

    Args:
        event: the receipt (``uk.csp.delivery.ack.v1``).
        delivered_to: who received what (the router's recent deliveries, then the audit
            store's).
        common: the values every record of the receipt shares (``Router._common``).
    """
    attrs = event.attributes
    acked = str(event.data.get("acknowledged_event_id", ""))
    status = str(event.data.get("status") or "received")
    claimed_type = event.data.get("acknowledged_type")
    sources = delivered_to(acked, attrs.party)
    if len(sources) > 1 and claimed_type is not None:  # the type may say which one
        sources = {p: t for p, t in sources.items() if t == claimed_type} or sources
    if not sources:
        raise Refusal(
            QuarantineReason.NOT_A_RECIPIENT,
            f"{attrs.party} acknowledged event {acked}, which the hub did not deliver to "
            f"{attrs.party}: only a recipient may acknowledge an event",
        )
    values = dict(common)
    records = []
    # Several only when two parties' events share the id and type and both reached this
    # party: the receipt cannot say which, so it is recorded against each, and says so.
    note = f"; it names {len(sources)} events with this id" if len(sources) > 1 else ""
    for publisher, event_type in sorted(sources.items()):
        values.update(
            event_id=acked,
            # the type as the hub routed it, never as the acknowledging party claims it
            # (access to records follows the type: a MARAC coordinator sees MARAC ones)
            event_type=event_type,
            event_time=None,
            publisher=publisher,
            case_pseudonym=None,
        )
        records.append(
            AuditRecord(
                **values,
                record_id=record_id_for(
                    acked,
                    attrs.party,
                    f"{AuditDecision.ACKNOWLEDGED.value}/{status}",
                    source=publisher,
                ),
                recipient=attrs.party,
                decision=AuditDecision.ACKNOWLEDGED,
                reason=f"{attrs.party} acknowledged {acked} of {publisher} ({status}){note}",
                ack_event_id=attrs.id,
            )
        )
    return records
