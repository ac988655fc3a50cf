"""Audit records for actions on a whole case: shredding, legal holds.

These are decisions too (DPA 2018 s62 logs erasure; a hold suspends it), so they enter the
same append-only log as disclosures, under the case's keyed pseudonym, never its reference.
"""

from __future__ import annotations

import datetime as dt
import uuid

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings

__all__ = ["audit_case_action"]


def audit_case_action(
    settings: HubSettings, *, case_ref: str, decision: AuditDecision, reason: str, by: str
) -> AuditRecord:
    """Append one record for an action on a case; returns it."""
    pseudonym = Pseudonymiser(load_pseudonym_key(settings)).case(case_ref)
    action_id = f"case-action:{uuid.uuid4()}"
    record = AuditRecord(
        record_id=record_id_for(action_id, by, decision.value),
        time=dt.datetime.now(dt.UTC),
        event_id=action_id,
        decision=decision,
        reason=f"{reason} (by {by})",
        case_pseudonym=pseudonym,
    )
    store = open_store(settings)
    try:
        store.append([record])
    finally:
        store.close()
    return record
