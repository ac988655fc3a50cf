"""Fault probes' bookkeeping: what was published, audited, delivered, unaudited, lost, doubled.

Every fault test ends with the same tally, read from the real places by what
``hub audit reconcile`` runs (``hub.audit.reconcile``): the recipients' topics (every record
on ``hub.out.<party>`` that is an event delivery, read raw: its ``ce_id`` and
``ce_hubrecipient`` headers, no key needed) and the audit store (``delivered`` records). A
delivery on a recipient topic with no ``delivered`` record for that event and recipient is
*unaudited*: the number every fault must leave at zero.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

from hub.audit.reconcile import (
    Outbound,
    SeenDelivery,
    delivered_records,
    read_outbound,
    reconcile,
)
from hub.audit.store import AuditStore
from hub.broker import EmbeddedBroker

__all__ = ["Tally", "kill_broker", "read_deliveries", "tally"]


def kill_broker(broker: EmbeddedBroker, *, within: float = 10.0) -> None:
    """kill -9 the embedded broker and wait until it is gone, its memory storage with it.

    A broker lost, as the fault tests mean it; ``broker.start()`` then starts an empty one on
    the same port. (``broker.stop()`` is a SIGTERM, on which Tansu waits about 5 s for the
    hub's clients, still connected, before it exits.)
    """
    pid = broker.pid
    if pid is None or broker.exit_code is not None:
        raise AssertionError(f"expected the broker at {broker.bootstrap} running, it is not")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + within
    while broker.exit_code is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"broker pid {pid} still there {within:.0f}s after SIGKILL")
        time.sleep(0.01)


@dataclass(frozen=True)
class Tally:
    """The six counts the issue asks every fault probe to report."""

    published: int
    audited: int
    delivered: int
    unaudited: int
    lost: int
    duplicated: int

    def __str__(self) -> str:
        return (
            f"published {self.published}, audited {self.audited}, delivered {self.delivered}, "
            f"unaudited {self.unaudited}, lost {self.lost}, duplicated {self.duplicated}"
        )


def read_deliveries(bootstrap: str, parties: Iterable[str]) -> list[tuple[str, str]]:
    """Every event delivery on the parties' topics now, as (event id, recipient), repeats kept."""
    outbound = asyncio.run(read_outbound(bootstrap, parties=parties))
    return [(d.event_id, d.recipient) for d in outbound.deliveries]


def tally(store: AuditStore, *, published: list[str], deliveries: list[tuple[str, str]]) -> Tally:
    """Count what the probe saw against what the store holds."""
    seen = [SeenDelivery(event_id, recipient) for event_id, recipient in deliveries]
    result = reconcile(
        Outbound(topics=[], deliveries=seen),
        delivered=delivered_records(store, event_ids=(d.event_id for d in seen)),
    )
    decided = {event_id for event_id in set(published) if store.has_event(event_id)}
    return Tally(
        published=len(published),
        audited=len(decided),
        delivered=result.deliveries,
        unaudited=len(result.unaudited),
        lost=len(set(published) - decided),
        duplicated=result.redelivered + result.duplicate_records,
    )
