"""Issue 15 probes on a real hub: identity, acknowledgements, and records of any size.

- A record as large as the broker takes (999,500 bytes, 10 MB) crashed the router agent on
  ``MessageSizeTooLarge`` when it copied the record to hub.quarantine: no copy, no notice,
  and the offset committed anyway. It must be quarantined (a digest plus a truncated copy),
  audited and noticed, and the same worker must route on.
- The same event id from two parties is two events, each routed and audited.
- A party the event was never delivered to cannot acknowledge it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.agents.routing import REJECTED_TYPE
from hub.broker import EmbeddedBroker
from hub.client import HubClient
from hub.envelope import wire
from hub.models import AuditDecision, AuditRecord, Delivery, EventAttributes
from tests.conftest import RunningHub, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, SOCJAG, marac_flag, socjag_intel

pytestmark = pytest.mark.integration

PUBLISHER = "marac.north-worcs"
RETAILER = "bcrp.redditch.kingfisher-retail"


@pytest.fixture(scope="module")
def own_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """A hub on its own broker: before the fix, its worker died on the large record."""
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, Path(tmp_path_factory.mktemp("data")))
        try:
            yield running
        finally:
            running.supervisor.stop()


def produce_large(hub: RunningHub, size: int) -> tuple[str, str, bytes]:
    """A record of ``size`` bytes with valid CloudEvents headers; returns (id, origin, value)."""
    attrs = EventAttributes(
        id=wire.new_event_id(),
        source=wire.source_for(PUBLISHER),
        type=MARAC_RAISED,
        time=dt.datetime.now(dt.UTC),
        subject="CASE-1",
    )
    value = hashlib.sha256(attrs.id.encode()).digest() * (size // 32) + b"v" * (size % 32)

    async def run() -> str:
        client = AIOKafkaProducer(
            bootstrap_servers=hub.bootstrap, acks="all", max_request_size=size + 64 * 1024
        )
        await client.start()
        try:
            meta = await client.send_and_wait(
                f"hub.in.{PUBLISHER}", value, key=b"CASE-1", headers=wire.to_headers(attrs)
            )
        finally:
            await client.stop()
        return f"{meta.topic}/{meta.partition}/{meta.offset}"

    return attrs.id, asyncio.run(run()), value


def quarantine_copy(hub: RunningHub, origin: str) -> tuple[bytes, dict[str, bytes]] | None:
    async def scan() -> tuple[bytes, dict[str, bytes]] | None:
        consumer = AIOKafkaConsumer(
            "hub.quarantine",
            bootstrap_servers=hub.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=1500)
        finally:
            await consumer.stop()
        for records in batches.values():
            for record in records:
                headers = dict(record.headers)
                if headers.get("hub_origin") == origin.encode():
                    return record.value or b"", headers
        return None

    return asyncio.run(scan())


def notices(hub: RunningHub, party: str, event_id: str) -> list[Delivery]:
    def rejected(ds: list[Delivery]) -> list[Delivery]:
        return [
            d for d in ds if d.type == REJECTED_TYPE and d.data.get("rejected_event_id") == event_id
        ]

    return rejected(hub.deliveries(party, until=lambda ds: bool(rejected(ds))))


@pytest.mark.parametrize("size", [999_500, 10 * 1024 * 1024])
def test_a_record_of_any_size_is_quarantined_noticed_and_the_worker_routes_on(
    own_hub: RunningHub, size: int
) -> None:
    hub = own_hub
    worker = hub.supervisor.workers[0]
    event_id, origin, value = produce_large(hub, size)
    good = hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC")))

    [rejected] = hub.wait_records(event_id)
    assert rejected.decision is AuditDecision.REJECTED
    assert rejected.reason.startswith("oversized: ")
    digest = hashlib.sha256(value).hexdigest()
    assert digest in rejected.reason
    kept, headers = wait_for(lambda: quarantine_copy(hub, origin), what=f"copy of {origin}")
    assert headers["hub_truncated"] == str(size).encode()
    assert headers["hub_sha256"] == digest.encode()
    assert value.startswith(kept)
    assert notices(hub, PUBLISHER, event_id), "the publisher is told why"

    assert len(hub.wait_records(good, at_least=2)) >= 2  # the next event is routed
    assert worker.poll() is None
    assert hub.supervisor.workers == [worker]


def test_the_same_id_from_two_parties_is_two_events(own_hub: RunningHub) -> None:
    hub = own_hub
    shared = wire.new_event_id()
    for party in (PUBLISHER, "west-mercia-police"):
        assert hub.publish(party, MARAC_RAISED, marac_flag(unique("MARAC")), event_id=shared)

    def both() -> list[AuditRecord] | None:
        records = hub.records(shared)
        publishers = {r.publisher for r in records if r.decision is AuditDecision.DELIVERED}
        return records if publishers == {PUBLISHER, "west-mercia-police"} else None

    records = wait_for(both, what=f"both events {shared}")
    assert AuditDecision.REJECTED not in {r.decision for r in records}
    assert len({r.record_id for r in records}) == len(records)


def test_a_party_that_was_not_sent_the_event_cannot_acknowledge_it(own_hub: RunningHub) -> None:
    hub = own_hub
    intel = hub.publish("west-mercia-police", SOCJAG, socjag_intel(unique("INT")))
    hub.wait_records(intel)

    async def acknowledge() -> str:
        async with HubClient(RETAILER, bootstrap=hub.bootstrap, keys=hub.keys) as client:
            forged = Delivery(
                id=intel,
                type=SOCJAG,
                source=wire.source_for("west-mercia-police"),
                time=dt.datetime.now(dt.UTC),
                subject=None,
                recipient=RETAILER,
                rule=None,
                protocol_hash=None,
                data={},
            )
            return await client.acknowledge(forged)

    ack_id = asyncio.run(acknowledge())
    [rejected] = hub.wait_records(ack_id)
    assert rejected.reason.startswith("not_a_recipient: ")
    assert notices(hub, RETAILER, ack_id)
    acks = [r for r in hub.records(intel) if r.decision is AuditDecision.ACKNOWLEDGED]
    assert acks == []
