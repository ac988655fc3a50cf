"""Consultations as audit records: a console view of personal data is itself logged.

DPA 2018 s62 requires competent authorities to log consultation of personal data with its
justification, date and time and, as far as possible, who consulted it. The console writes
one ``consulted`` record per page view (and per export) with ``record_consultation``, the
one the CLI's reads of personal data use too (``hub.audit.consultations``): the viewer
(a ``SignedIn``) and the justification (a ``Grant``) in ``reason``, the purpose in
``purpose``, and what was viewed as the event id or the subject or case pseudonym (never a
reference in clear), so a subject access request or a case chronology search finds who
looked.
"""

from __future__ import annotations

from hub.audit.consultations import record_consultation

__all__ = ["record_consultation"]
