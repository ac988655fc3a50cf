"""The audit store stops taking writes: the router pauses, then resumes, and loses nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.models import AuditDecision
from tests.conftest import RunningHub, outbox_empty, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration


@pytest.fixture
def outage_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """Its own broker: the test breaks this hub's audit store and shortens its outage limit,
    and two hubs on one broker would share its topics and consumer groups (conftest.py)."""
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, tmp_path / "data", audit_outage_limit=1.0)
        try:
            yield running
        finally:
            running.supervisor.stop()


def _log_has(hub: RunningHub, event: str) -> bool:
    log = hub.supervisor.worker_log
    return log.exists() and f'"event": "{event}"' in log.read_text()


def test_router_pauses_while_audit_cannot_be_written(outage_hub: RunningHub) -> None:
    hub = outage_hub
    warm = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    hub.wait_records(warm, at_least=8)
    # ... and the router has seen them stored: a record it still counted as pending (the sink
    # took over the limit to store it) would pause the first event below for a moment, and
    # the pause would lift on its own before the store was unlocked
    wait_for(
        lambda: outbox_empty(hub.settings.data_dir),
        what="the router to see the warm event stored",
    )

    lock = sqlite3.connect(hub.settings.audit_db_path, isolation_level=None, timeout=5)
    lock.execute("BEGIN EXCLUSIVE")  # the store cannot be written until we let go
    ids: list[str] = []

    def publish_until_paused() -> bool:
        # The router checks the gate per event, so it can only pause on an event that
        # arrives once the outage limit has passed: keep traffic flowing until it does.
        if _log_has(hub, "delivery_paused"):
            return True
        ids.append(hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC"))))
        return False

    try:
        wait_for(publish_until_paused, timeout=60, what="the router to pause delivery")
        assert not _log_has(hub, "delivery_resumed")
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    wait_for(lambda: _log_has(hub, "delivery_resumed"), timeout=90, what="delivery to resume")
    for event_id in ids:
        records = hub.wait_records(event_id, at_least=8, timeout=60)
        delivered = {r.recipient for r in records if r.decision == AuditDecision.DELIVERED}
        assert "west-mercia-police" in delivered
    police = hub.deliveries("west-mercia-police", until=lambda ds: set(ids) <= {d.id for d in ds})
    assert set(ids) <= {d.id for d in police}
    # every delivery on the topic has its audit record, and none is doubled
    got = [d.id for d in police if d.type == MARAC_RAISED]
    assert len(got) == len(set(got))
    with hub.store() as store:
        for event_id in got:
            assert any(
                r.recipient == "west-mercia-police" and r.decision == AuditDecision.DELIVERED
                for r in store.query(event_id=event_id)
            )
