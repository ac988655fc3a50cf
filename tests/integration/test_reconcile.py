"""`hub audit reconcile` against the real broker: every delivery has its audit record.

The real console script in a subprocess, as an IG officer runs it next to `hub up`: on a
hub of its own (so the counts are exact), and on a bare broker holding deliveries written
by hand (one with no audit record, one twice, one of the hub's own notices).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from hub.audit.store import open_store
from hub.broker import EmbeddedBroker, topics
from hub.broker.topics import all_topics, ensure_topics
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings
from tests.conftest import start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag
from tests.faults import read_deliveries
from tests.integration.test_cli import run_hub

pytestmark = pytest.mark.integration

COORDINATOR = "marac.north-worcs"
POLICE = "west-mercia-police"
HOUSING = "redditch-bc.housing-repairs"


def _produce(bootstrap: str, topic: str, headers: dict[str, str], copies: int = 1) -> None:
    """A record that looks like a delivery (or a notice) to anyone reading headers."""

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for _ in range(copies):
                await producer.send_and_wait(
                    topic,
                    value=b"sealed payload",
                    key=uuid.uuid4().bytes,
                    headers=[(k, v.encode()) for k, v in headers.items()],
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def _delivery(event_id: str, recipient: str, source: str = COORDINATOR) -> dict[str, str]:
    return {"ce_id": event_id, "ce_source": f"/parties/{source}", "ce_hubrecipient": recipient}


def test_reconcile_proves_every_delivery_audited_then_finds_one_that_is_not(
    tmp_path: Path,
) -> None:
    with EmbeddedBroker() as broker:
        hub = start_hub(broker.bootstrap, tmp_path / "data")
        try:
            parties = hub.supervisor.protocol.party_ids
            published = [
                hub.publish(COORDINATOR, MARAC_RAISED, marac_flag(unique("MARAC")))
                for _ in range(3)
            ]
            expected = 8 * len(published)  # eight recipients per flag (four urgent care)
            for event_id in published:  # its records first: cheap to poll
                hub.wait_records(event_id, at_least=8, timeout=120)
            wait_for(
                lambda: len(read_deliveries(broker.bootstrap, parties)) >= expected,
                timeout=120,
                what="every delivery on the recipients' topics",
            )
            # the hub's address comes from its hub.json in HUB_DATA_DIR, as for `hub publish`
            clean = run_hub("audit", "reconcile", "--json", "--wait", "30", env=hub.env())
            assert clean.returncode == 0, clean.stderr
            report = json.loads(clean.stdout)
            assert report["ok"] is True
            assert report["unaudited"] == 0
            assert report["unaudited_deliveries"] == []
            assert (report["read"], report["deliveries"], report["audited"]) == (
                expected,
                expected,
                expected,
            )
            assert report["duplicated"] == 0
            assert report["unidentified"] == 0
            assert set(report["topics"]) == {topics.outbound(p) for p in parties}

            # a delivery on a recipient topic that the hub never audited
            fake = f"fake-{uuid.uuid4()}"
            _produce(broker.bootstrap, topics.outbound(HOUSING), _delivery(fake, HOUSING))
            found = run_hub("audit", "reconcile", "--json", "--wait", "1", env=hub.env())
            assert found.returncode == 1, found.stderr
            report = json.loads(found.stdout)
            assert report["ok"] is False
            assert report["unaudited"] == 1
            (listed,) = report["unaudited_deliveries"]
            assert (listed["event_id"], listed["recipient"], listed["publisher"]) == (
                fake,
                HOUSING,
                COORDINATOR,
            )
            assert listed["origin"].startswith(f"{topics.outbound(HOUSING)}/")
            assert report["audited"] == expected
            text = run_hub("audit", "reconcile", "--wait", "0", env=hub.env())
            assert text.returncode == 1
            assert f"{fake}  {HOUSING}" in text.stdout
            assert "unaudited: 1" in text.stdout
        finally:
            hub.supervisor.stop()


def test_reconcile_counts_duplicates_and_skips_the_hubs_notices(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        settings = HubSettings(data_dir=tmp_path / "data", kafka_bootstrap=broker.bootstrap)
        asyncio.run(ensure_topics(broker.bootstrap, all_topics([POLICE, HOUSING]), partitions=2))
        audited = AuditRecord(
            record_id=record_id_for("evt-1", POLICE, "delivered", source=COORDINATOR),
            time=dt.datetime.now(dt.UTC),
            event_id="evt-1",
            publisher=COORDINATOR,
            recipient=POLICE,
            decision=AuditDecision.DELIVERED,
            reason="rule marac-flags",
        )
        store = open_store(settings)
        try:
            store.append([audited])
        finally:
            store.close()
        _produce(broker.bootstrap, topics.outbound(POLICE), _delivery("evt-1", POLICE), copies=2)
        notice = {"ce_id": "n-1", "ce_source": "/parties/hub", "ce_hubrecipient": HOUSING}
        _produce(broker.bootstrap, topics.outbound(HOUSING), notice)
        _produce(broker.bootstrap, topics.outbound(HOUSING), _delivery("evt-2", HOUSING))
        env = {"HUB_DATA_DIR": str(settings.data_dir), "HUB_KAFKA_BOOTSTRAP": broker.bootstrap}
        result = run_hub("audit", "reconcile", "--json", "--wait", "0", env=env)
        assert result.returncode == 1, result.stderr
        report = json.loads(result.stdout)
        assert (report["read"], report["deliveries"], report["audited"]) == (3, 2, 1)
        assert report["notices"] == 1
        assert report["duplicated"] == 1
        assert report["redelivered"] == 1
        (duplicate,) = report["duplicated_deliveries"]
        assert (duplicate["event_id"], duplicate["recipient"], duplicate["copies"]) == (
            "evt-1",
            POLICE,
            2,
        )
        assert [d["event_id"] for d in report["unaudited_deliveries"]] == ["evt-2"]
