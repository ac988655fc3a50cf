"""SIGTERM a worker mid-stream: it finishes the event in hand, commits, flushes and exits 0.

Two workers on their own broker; one is terminated while the scenario is still being
published. The other takes over its partitions, every event ends decided, and the audit log
holds one record per delivery (at-least-once with deterministic ids: anything the stopped
worker had not committed is routed again with the same ids).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.models import AuditDecision, Delivery
from tests.conftest import RunningHub, start_hub, wait_for

pytestmark = pytest.mark.integration

EVENTS = 120


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[RunningHub]:
    """Its own broker: two workers (the shared hub has one), one of them stopped mid-stream;
    two hubs on one broker would share its topics and consumer groups (tests/conftest.py)."""
    with EmbeddedBroker() as broker:
        # the hub's default partitions, not the tests' 1: both workers share each topic, so
        # the stopped one has events of the publishers' topics in hand to drain
        running = start_hub(broker.bootstrap, tmp_path / "data", workers=2, partitions=3)
        try:
            yield running
        finally:
            running.supervisor.stop()


def test_sigterm_mid_stream_drains_and_loses_nothing(two_workers: RunningHub) -> None:
    hub = two_workers
    published: list[str] = []
    publisher = threading.Thread(
        target=hub.publish_scenario, args=(published,), kwargs={"events": EVENTS, "seed": 13}
    )
    publisher.start()
    wait_for(lambda: hub.decided(list(published)) >= 25, timeout=60, what="25 events routed")
    pid, code = hub.supervisor.terminate_worker(0)
    assert code == 0  # a clean exit, not killed at the deadline
    log = hub.supervisor.worker_log.read_text()
    assert f'"pid": {pid}, "event": "worker_drained"' in log
    publisher.join(timeout=120)
    assert len(published) == EVENTS
    wait_for(
        lambda: hub.decided(published) == EVENTS,
        timeout=120,
        what="every event decided by the remaining worker",
    )

    with hub.store() as store:
        records = [r for i in published for r in store.query(event_id=i)]
    assert Counter(r.record_id for r in records).most_common(1)[0][1] == 1
    delivered = Counter(
        (r.event_id, r.recipient) for r in records if r.decision == AuditDecision.DELIVERED
    )
    assert delivered
    assert max(delivered.values()) == 1
    by_party: dict[str, set[str]] = {}
    for event_id, recipient in delivered:
        assert recipient is not None
        by_party.setdefault(recipient, set()).add(event_id)
    for party, expected in by_party.items():

        def complete(ds: list[Delivery], e: set[str] = expected) -> bool:
            return e <= {d.id for d in ds}

        ids = {d.id for d in hub.deliveries(party, until=complete) if not d.from_hub}
        assert expected <= ids, party
