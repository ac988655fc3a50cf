"""One audit record as a reader needs it: who saw it, and why, or why not.

``hub audit query`` and the console's audit search list records of every kind in one table.
A disclosure is answered by its publisher, recipient and rule; a withholding by its reason;
a consultation (DPA 2018 s62) by its viewer, purpose and justification; a legal hold by what
was held and by whom. Those facts sit in different fields per kind (a consultation names its
viewer in ``reason``, as ``hub.web.consult`` writes it; a case action ends its reason with
``(by NAME)``, as ``hub.audit.actions`` writes it), so this module reads them once for both
views, and a record it cannot parse still shows its whole reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.models import AuditDecision, AuditRecord

__all__ = ["RowView", "describe"]

#: ``<what> viewed by <viewer>: <justification>`` (``hub.web.consult``)
_VIEWED = re.compile(r"^(?P<what>.+?) viewed by (?P<who>[^:]+): (?P<why>.*)$", re.DOTALL)
#: ``<reason> (by <who>)`` at the end of a case action's reason (``hub.audit.actions``)
_BY = re.compile(r"^(?P<why>.*) \(by (?P<who>[^()]+)\)$", re.DOTALL)
#: how much of a case pseudonym identifies it to a reader (the store holds all of it)
_PSEUDONYM_CHARS = 12

_CASE_ACTIONS = {
    AuditDecision.HOLD_PLACED,
    AuditDecision.HOLD_LIFTED,
    AuditDecision.SHREDDED,
    AuditDecision.EXEMPTED,
}


@dataclass(frozen=True)
class RowView:
    """What one row shows.

    ``actor`` is the person who acted (a viewer, who placed a hold) for records that are not
    about one party receiving an event; otherwise ``publisher`` and ``recipient`` answer
    "who". ``what`` names the object of an action (a case by pseudonym, a view); ``why``
    is the rule and fields of a disclosure, or the reason for anything else.
    """

    publisher: str | None
    recipient: str | None
    actor: str | None
    what: str | None
    why: str

    def because(self) -> str:
        """``what: why`` (plain text), or the why alone."""
        return f"{self.what}: {self.why}" if self.what else self.why

    def who(self) -> str:
        """``publisher -> recipient``, the actor, or ``-`` (plain text)."""
        if self.actor:
            return self.actor
        if self.publisher and self.recipient:
            return f"{self.publisher} -> {self.recipient}"
        if self.publisher:
            return f"from {self.publisher}"
        if self.recipient:
            return f"to {self.recipient}"
        return "-"


def describe(record: AuditRecord) -> RowView:
    """The who, what and why of one record of any kind."""
    decision = record.decision
    if decision is AuditDecision.CONSULTED:
        return _consultation(record)
    if decision in _CASE_ACTIONS:
        return _case_action(record)
    if decision is AuditDecision.DELIVERED:
        fields = ", ".join(record.fields) or "no fields"
        why = f"rule {record.rule}: {fields}" if record.rule else record.reason
        if record.gateway:  # the legal gateway itself, not only the rule that cites it
            why = f"{why}; gateway: {record.gateway}"
        return RowView(record.publisher, record.recipient, None, None, why)
    return RowView(record.publisher, record.recipient, None, None, record.reason or "-")


def _case(record: AuditRecord) -> str | None:
    ps = record.case_pseudonym
    return f"case {ps[:_PSEUDONYM_CHARS]}" if ps else None


def _looked_at(record: AuditRecord) -> str | None:
    """The case and subjects a consultation looked at, by pseudonym."""
    named = [_case(record)] if record.case_pseudonym else []
    named += [f"subject {ps[:_PSEUDONYM_CHARS]}" for ps in record.subject_pseudonyms]
    return ", ".join(n for n in named if n) or None


def _consultation(record: AuditRecord) -> RowView:
    found = _VIEWED.match(record.reason)
    purpose = f"{record.purpose}: " if record.purpose else ""
    if found is None:
        return RowView(None, None, None, _looked_at(record), f"{purpose}{record.reason}")
    what = found["what"]
    looked_at = _looked_at(record)
    if looked_at:
        what = f"{what}, {looked_at}"
    return RowView(None, None, found["who"], what, f"{purpose}{found['why']}")


def _case_action(record: AuditRecord) -> RowView:
    found = _BY.match(record.reason)
    actor, why = (found["who"], found["why"]) if found else (None, record.reason)
    return RowView(record.publisher, record.recipient, actor, _case(record), why)
