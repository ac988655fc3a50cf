"""kill -9 a router worker mid-stream, start another: nothing lost, nothing doubled.

At-least-once processing with deterministic ids: after the crash, events whose offsets were
not committed are processed again; the audit store keeps one record per decision (record ids
are derived from event, party and decision) and a recipient's consumer, idempotent by event
id, handles each delivery once. Every published event ends with its audit records.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.agents.sink import CHECKPOINT_TYPE
from hub.broker import EmbeddedBroker
from hub.client import HubClient
from hub.models import AuditDecision, Delivery
from hub.scenarios.north_worcs import Scenario
from tests.conftest import RunningHub, start_hub, wait_for

pytestmark = pytest.mark.integration

EVENTS = 160
#: what the hub itself sends a party: refusal notices and signed audit checkpoints
HUB_NOTICES = {"uk.csp.hub.rejected.v1", CHECKPOINT_TYPE}


@pytest.fixture
def crash_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """A hub on its own broker: killing its worker must not disturb other tests."""
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, tmp_path / "data")
        try:
            yield running
        finally:
            running.supervisor.stop()


def _publish_all(hub: RunningHub, published: list[str]) -> None:
    async def run() -> None:
        clients: dict[str, HubClient] = {}
        try:
            for item in Scenario(seed=11).events(EVENTS):
                client = clients.setdefault(
                    item.publisher,
                    HubClient(item.publisher, bootstrap=hub.bootstrap, keys=hub.keys),
                )
                published.append(
                    await client.publish(
                        item.event_type, item.data, key=item.key, subject=item.subject
                    )
                )
                await asyncio.sleep(0.01)
        finally:
            for client in clients.values():
                await client.close()

    asyncio.run(run())


def _decided(hub: RunningHub, ids: list[str]) -> int:
    with hub.store() as store:
        return sum(store.has_event(i) for i in ids)


def test_kill_worker_mid_stream_loses_nothing(crash_hub: RunningHub) -> None:
    hub = crash_hub
    published: list[str] = []
    publisher = threading.Thread(target=_publish_all, args=(hub, published))
    publisher.start()
    wait_for(
        lambda: _decided(hub, list(published)) >= 25,
        timeout=60,
        what="25 events routed before the crash",
    )
    killed = hub.supervisor.kill_worker(0)
    assert killed > 0
    hub.supervisor.start_worker()
    publisher.join(timeout=120)
    assert len(published) == EVENTS
    hub.supervisor.wait_ready(timeout=90)
    wait_for(
        lambda: _decided(hub, published) == EVENTS,
        timeout=120,
        what="every published event decided after the restart",
    )

    with hub.store() as store:
        records = [r for i in published for r in store.query(event_id=i)]
    delivered = Counter(
        (r.event_id, r.recipient) for r in records if r.decision == AuditDecision.DELIVERED
    )
    assert delivered, "the scenario delivers to someone"
    assert max(delivered.values()) == 1  # one audit record per delivery, never two

    # every audited delivery is on the recipient's topic, and each recipient handles it once
    by_party: dict[str, set[str]] = {}
    for event_id, recipient in delivered:
        assert recipient is not None
        by_party.setdefault(recipient, set()).add(event_id)
    for party, expected in by_party.items():

        def complete(ds: list[Delivery], e: set[str] = expected) -> bool:
            return e <= {d.id for d in ds}

        handled = hub.deliveries(party, until=complete)
        ids = [d.id for d in handled if d.type not in HUB_NOTICES]
        assert expected <= set(ids), party
        assert set(ids) <= expected | set(published)

    inbox_view = _handled_once(hub, "west-mercia-police.licensing", hub.settings.data_dir)
    assert len(inbox_view) == len(set(inbox_view))


def _handled_once(hub: RunningHub, party: str, data_dir: Path) -> list[str]:
    """What an idempotent consumer (with an inbox) handles: each event id once."""

    async def run() -> list[str]:
        seen: list[str] = []
        async with HubClient(
            party,
            bootstrap=hub.bootstrap,
            inbox=data_dir / "inbox-test.sqlite3",
            group_id="restart-check",
            keys=hub.keys,
        ) as client:
            async for delivery in client.deliveries():
                seen.append(delivery.id)
        return seen

    return asyncio.run(run())
