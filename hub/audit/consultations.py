"""Consultations as audit records: every read of personal data in the log is itself logged.

DPA 2018 s62 requires competent authorities to log consultation of personal data with its
justification, date and time and, as far as possible, who consulted it. The console (one
record per page view and export, ``hub.web.consult``) and the CLI (one per command that
shows personal data, ``hub.cli.audit_consult``) write the same ``consulted`` record into
the same append-only, Merkle logged store as the disclosures they read, the way
``hub.audit.actions`` records IG actions: the viewer and the justification in ``reason``,
the purpose in ``purpose``, and what was viewed as the event id or the subject or case
pseudonym (never a reference in clear), so a subject access request or a case chronology
search finds who looked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

from hub.audit.store import AuditStore
from hub.models import AuditDecision, AuditRecord, record_id_for

__all__ = ["MIN_REASON", "PURPOSES", "Justification", "Viewer", "record_consultation"]

#: why a person may consult personal data (the console's select, the CLI's ``--purpose``)
PURPOSES = (
    "Subject access request",
    "Domestic Homicide Review",
    "MARAC case management",
    "Breach or incident investigation",
    "Correction or erasure (UK GDPR Art 19)",
    "Audit and assurance",
)
#: a justification is a sentence, not "x"
MIN_REASON = 10


class Viewer(Protocol):
    """Who looked: a console sign-in, or the operator a CLI command names."""

    def describe(self) -> str:
        """``name (role, party)`` or ``name (command line, ...)``, for the record's reason."""
        ...


class Justification(Protocol):
    """Why: one of ``PURPOSES`` and the viewer's own words."""

    @property
    def purpose(self) -> str:
        """One of ``PURPOSES``."""
        ...

    @property
    def reason(self) -> str:
        """Free text, at least ``MIN_REASON`` characters."""
        ...


def record_consultation(
    store: AuditStore,
    *,
    viewer: Viewer,
    grant: Justification,
    what: str,
    now: dt.datetime,
    channel: str = "console",
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
        channel: where the view was: ``console`` or ``cli`` (the fresh id's prefix).
        event_id: the event viewed; otherwise a fresh ``<channel>:<uuid>`` id.
        subject_pseudonym: the subject whose disclosures were viewed.
        case_pseudonym: the case whose chronology was viewed.
    """
    view_id = f"{channel}:{uuid.uuid4()}"
    record = AuditRecord(
        record_id=record_id_for(view_id, viewer.describe(), AuditDecision.CONSULTED.value),
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
