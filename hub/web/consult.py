"""Consultations as audit records: a console view of personal data is itself logged.

DPA 2018 s62 requires competent authorities to log consultation of personal data with its
justification, date and time and, as far as possible, who consulted it. The console writes
one ``consulted`` record per page view (and per export) into the same append-only, Merkle
logged store as the disclosures it reads, the way ``hub.audit.actions`` records IG actions:
the viewer and the justification in ``reason``, the purpose in ``purpose``, and what was
viewed as the event id or the subject or case pseudonym (never a reference in clear), so a
subject access request or a case chronology search finds who looked.
"""

from __future__ import annotations

import datetime as dt
import uuid

from hub.audit.store import AuditStore
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.web.session import Grant, SignedIn

__all__ = ["record_consultation"]


def record_consultation(
    store: AuditStore,
    *,
    viewer: SignedIn,
    grant: Grant,
    what: str,
    now: dt.datetime,
    event_id: str | None = None,
    subject_pseudonym: str | None = None,
    case_pseudonym: str | None = None,
) -> AuditRecord:
    """Append one ``consulted`` record and return it.

    Args:
        store: the audit store.
        viewer: who looked.
        grant: the justification they gave (purpose and free text).
        what: the view, e.g. ``"event detail"`` or ``"subject access report (csv)"``.
        now: the time of the view.
        event_id: the event viewed; otherwise a fresh ``console:<uuid>`` id.
        subject_pseudonym: the subject whose disclosures were viewed.
        case_pseudonym: the case whose chronology was viewed.
    """
    view_id = f"console:{uuid.uuid4()}"
    record = AuditRecord(
        record_id=record_id_for(view_id, viewer.name, AuditDecision.CONSULTED.value),
        time=now,
        event_id=event_id or view_id,
        decision=AuditDecision.CONSULTED,
        reason=f"{what} viewed by {viewer.describe()}: {grant.reason}",
        purpose=grant.purpose,
        case_pseudonym=case_pseudonym,
        subject_pseudonyms=(subject_pseudonym,) if subject_pseudonym else (),
    )
    store.append([record])
    return record
