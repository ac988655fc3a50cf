"""Who may see what: the console's roles as pure functions over audit records.

- ``ig-officer``: the whole audit (search, events, subject access, chronologies), the log's
  integrity and the MARAC board.
- ``marac-coordinator``: MARAC cases and their acknowledgements: the board, and the audit
  records and chronology entries of MARAC events (``uk.csp.marac.*``) and their
  acknowledgements.
- ``agency-user``: the deliveries to (and events from) their own party, nothing else (not
  even that an event was withheld from them).

Every signed-in role sees the protocol, the explain form and the aggregate counters, which
hold no personal data.

Refused ``hub.audit`` messages (``hub.audit.refusals``: someone wrote to the audit stream
without the hub's key, or a writer sent one the sink cannot read) are the IG role's alert: a
banner on an IG officer's dashboard and a list on the log integrity page. Other roles are not
shown them, not even that integrity needs attention: they can do nothing about it, and a
security incident is the IG officer's to raise.
"""

from __future__ import annotations

from collections.abc import Iterable

from hub.models import AuditDecision, AuditRecord
from hub.web.accounts import Role
from hub.web.session import SignedIn

__all__ = ["MARAC_PREFIX", "can_open_event", "visible_records"]

MARAC_PREFIX = "uk.csp.marac."


def _sees(user: SignedIn, record: AuditRecord) -> bool:
    if user.role is Role.IG_OFFICER:
        return True
    if user.role is Role.AGENCY_USER:
        # their own publications and what reached them; a withholding from them is the
        # protocol's business, and showing it would say an event they may not see exists
        if user.party is None:
            return False
        return record.publisher == user.party or (
            record.recipient == user.party and record.decision is not AuditDecision.WITHHELD
        )
    # MARAC coordinator: MARAC events and their acknowledgements, whose records carry the
    # acknowledged event's type (``event_id`` is that event; see ``Router._acknowledge``).
    return (record.event_type or "").startswith(MARAC_PREFIX)


def visible_records(user: SignedIn, records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The records this user may see, in the given order."""
    return [r for r in records if _sees(user, r)]


def can_open_event(user: SignedIn, records: Iterable[AuditRecord]) -> bool:
    """Whether the user may open an event: some routing record of it is theirs to see.

    A consultation record alone does not open an event to an agency user (it names the
    viewer, not a party of the event).
    """
    return any(_sees(user, r) for r in records if r.decision is not AuditDecision.CONSULTED)
