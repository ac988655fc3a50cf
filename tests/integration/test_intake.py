"""A backlog is routed in batches: each fetch reaches the route loop whole (``hub.agents.intake``).

faust handed the route loop one record per trip round the event loop, so it found one event
ready whenever it looked and routed batches of one, each paying a whole batch's fixed cost.
Here the worker is down while a backlog builds up; once it is back, the backlog must be
routed in batches of many events: observable as far fewer ``hub.audit`` messages (one per
routed batch, ``hub.audit.stream.audit_messages``) than events, with every event audited,
delivered to its recipients once, and acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.agents.sink import decode_audit_message
from hub.broker import topics
from hub.client import HubClient
from hub.models import AuditDecision
from tests import factories as hub_events
from tests.conftest import RunningHub, hub_on_own_broker, records_on, wait_for

pytestmark = pytest.mark.integration

BACKLOG = 120
SOCJAG = "uk.csp.socjag.intel.v1"


@pytest.fixture
def idle_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """A hub on its own broker: its worker is killed, which must not disturb other tests."""
    with hub_on_own_broker(tmp_path / "data") as running:
        yield running


def _audit_messages(bootstrap: str, event_ids: set[str]) -> Counter[str]:
    """For every ``hub.audit`` message holding records of ``event_ids``: how many events.

    Read to the end as of now (every message of a decided event is there already).
    """
    found: Counter[str] = Counter()
    for record in records_on(bootstrap, [topics.AUDIT]):
        ids = {r.event_id for r in decode_audit_message(record.value)}
        if ids & event_ids:
            found[f"{record.partition}@{record.offset}"] = len(ids & event_ids)
    return found


def test_backlog_is_routed_in_batches_and_every_event_once(idle_hub: RunningHub) -> None:
    hub = idle_hub
    hub.supervisor.kill_worker()  # the backlog builds up on the broker meanwhile
    published: list[str] = []
    hub.publish_scenario(published, events=BACKLOG, seed=41, pause=0)
    hub.supervisor.start_worker()
    wait_for(
        lambda: hub.decided(published) == len(published) or None,
        timeout=120,
        what="the backlog decided",
    )
    messages = _audit_messages(hub.bootstrap, set(published))
    # one audit message per routed batch: a batch of one per event was the old behaviour
    assert sum(messages.values()) >= len(set(published))
    assert len(messages) <= len(published) // 4, messages
    assert max(messages.values()) > 1
    # every decision once: the store holds each event's records, none twice
    with hub.store() as store:
        for event_id in published:
            records = store.query(event_id=event_id)
            ids = [r.record_id for r in records]
            assert records, event_id
            assert len(ids) == len(set(ids)), event_id


def test_same_id_twice_in_one_batch_is_delivered_once(idle_hub: RunningHub) -> None:
    """The second record of an id in the same batch is a duplicate, though not yet on disk.

    A batch's claims are written together, after it is routed (``SeenEvents.remember_many``),
    so the route loop must find a claim made earlier in the same batch in memory.
    """
    hub = idle_hub
    hub.supervisor.kill_worker()
    data = hub_events.socjag_intel("INT-BATCH")
    client = HubClient("west-mercia-police", bootstrap=hub.bootstrap, keys=hub.keys)
    message = client.build(SOCJAG, data, key="INT-BATCH")
    event_id = next(v for k, v in message.headers if k == "ce_id").decode()

    async def send_twice() -> list[str]:
        try:
            return [await client.send(message), await client.send(message)]
        finally:
            await client.close()

    first, second = asyncio.run(send_twice())
    hub.supervisor.start_worker()
    records = hub.wait_records(f"duplicate:{second}", timeout=120)
    assert records[0].decision == AuditDecision.REJECTED
    assert (records[0].reason or "").startswith("duplicate_event_id: ")
    assert first in (records[0].reason or "")
    delivered = [r for r in hub.records(event_id) if r.decision == AuditDecision.DELIVERED]
    assert delivered
    assert len({r.recipient for r in delivered}) == len(delivered)
