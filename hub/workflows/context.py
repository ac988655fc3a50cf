"""What every workflow command and sweep opens: the hub's time, audit store and identities.

``hub marac status|sweep``, ``hub pubwatch status|sweep`` and the running hub's timers all
read the audit log at the hub's clock and publish the hub's own events as party ``hub``; this
is the one place that knows how.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hub.agents.supervisor import read_state
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import AuditStore, open_store
from hub.client import HubClient
from hub.clock import clock_for
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.settings import HubSettings

__all__ = ["WorkflowContext", "hub_publisher", "workflow_context"]


@dataclass(frozen=True)
class WorkflowContext:
    """The hub's view of now, for one command or sweep."""

    settings: HubSettings
    protocol: Protocol
    now: dt.datetime
    store: AuditStore
    pseudonymiser: Pseudonymiser


@contextmanager
def workflow_context(settings: HubSettings) -> Iterator[WorkflowContext]:
    """Open the audit store at the hub's clock; closed again on the way out."""
    store = open_store(settings)
    try:
        yield WorkflowContext(
            settings=settings,
            protocol=load_protocol(settings.protocol),
            now=clock_for(settings.clock_file)(),
            store=store,
            pseudonymiser=Pseudonymiser(load_pseudonym_key(settings)),
        )
    finally:
        store.close()


def hub_publisher(settings: HubSettings) -> HubClient:
    """A client that publishes as the hub itself (signed with its key, on ``hub.in.hub``)."""
    return HubClient(
        HUB_PARTY,
        bootstrap=settings.kafka_bootstrap or read_state(settings).bootstrap,
        keys=FileKeyStore(settings.keys_dir),
        security=settings.kafka_security,
    )
