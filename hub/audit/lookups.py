"""Read-only lookups the router makes in the audit store, opened lazily once per process.

The router stays a pure function of what it is given (``hub.agents.routing``); a worker
hands it these, built from its settings (``hub.agents.app.build_router``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from hub.audit.store import AuditStore, open_store
from hub.models import AuditDecision
from hub.settings import HubSettings

__all__ = ["delivered_to", "deliveries_of"]

#: the records of one event to one party are few (a delivery, perhaps a correction's)
_LIMIT = 1000


def deliveries_of(
    store: AuditStore, event_id: str, party: str
) -> Collection[tuple[str, str | None]]:
    """(publisher, event type) of each event with this id the store says reached ``party``.

    Two parties may publish the same id (an event is its source and id), so there may be
    two. One indexed ``query`` by event id.
    """
    records = store.query(
        event_id=event_id, party=party, decision=AuditDecision.DELIVERED, limit=_LIMIT
    )
    return {
        (r.publisher, r.event_type)
        for r in records
        if r.recipient == party and r.publisher is not None
    }


def delivered_to(settings: HubSettings) -> Callable[[str, str], Collection[tuple[str, str | None]]]:
    """The router's ``delivered`` lookup: ``deliveries_of`` on the hub's audit store.

    The store is opened on the first acknowledgement, not when the worker starts.
    """
    store: AuditStore | None = None

    def lookup(event_id: str, party: str) -> Collection[tuple[str, str | None]]:
        nonlocal store
        if store is None:
            store = open_store(settings, lookups=True)
        return deliveries_of(store, event_id, party)

    return lookup
