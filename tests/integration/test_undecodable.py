"""A record the Kafka client cannot decode never stops a worker (``hub.broker.decode_guard``).

A partner's system writes to its own ``hub.in.<party>`` a record with a header *name* that is
not UTF-8: Kafka stores it, and aiokafka's decoder raised on it before the router ran, so the
worker crashed, restarted from the same offset and crashed again, and every later event
stalled. The record must be quarantined with a reason and its audit record, its offset
committed only after that, and the next good event routed by the same worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.producer import message_accumulator, producer
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

from hub.client import HubClient
from hub.envelope import wire
from hub.models import AuditDecision, Delivery, EventAttributes
from tests.conftest import RunningHub, hub_on_own_broker, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration

PARTY = "redditch-bc.housing-repairs"
TOPIC = f"hub.in.{PARTY}"


class RawName(str):
    """A header name whose UTF-8 encoding is ``raw`` (what a non-Python client can write)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawName:
        name = super().__new__(cls, raw.decode("latin-1"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@pytest.fixture
def own_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """A hub on its own broker: before the guard, its worker died (others must not)."""
    with hub_on_own_broker(tmp_path / "data") as running:
        yield running


def produce_raw_header_name(
    hub: RunningHub, name: bytes, monkeypatch: pytest.MonkeyPatch, *, topic: str = TOPIC
) -> str:
    """Produce one record with a header named by raw bytes; returns its origin.

    aiokafka's producer encodes header names as UTF-8 in its C batch builder; its pure-Python
    builder calls ``name.encode``, so ``RawName`` writes the bytes a Java or librdkafka
    client could (Kafka's protocol does not check them).
    """
    for module in (message_accumulator, producer):
        monkeypatch.setattr(module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy)
    attrs = EventAttributes(
        id=wire.new_event_id(),
        source=wire.source_for(PARTY),
        type=MARAC_RAISED,
        time=dt.datetime.now(dt.UTC),
        subject="CASE-1",
    )
    headers = [*wire.to_headers(attrs), (RawName(name), b"x")]

    async def run() -> str:
        client = AIOKafkaProducer(bootstrap_servers=hub.bootstrap, acks="all")
        await client.start()
        try:
            meta = await client.send_and_wait(
                topic, b"not even avro", key=b"CASE-1", headers=headers
            )
        finally:
            await client.stop()
        return f"{meta.topic}/{meta.partition}/{meta.offset}"

    try:
        return asyncio.run(run())
    finally:
        monkeypatch.undo()


def quarantine_copy(hub: RunningHub, origin: str) -> list[tuple[str, bytes]] | None:
    async def scan() -> list[tuple[str, bytes]] | None:
        consumer = AIOKafkaConsumer(
            "hub.quarantine",
            bootstrap_servers=hub.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=1500)
        finally:
            await consumer.stop()
        for records in batches.values():
            for record in records:
                if dict(record.headers).get("hub_origin") == origin.encode():
                    return list(record.headers)
        return None

    return asyncio.run(scan())


def read_out(hub: RunningHub, party: str) -> tuple[list[Delivery], list[str]]:
    """A party's deliveries read once with the SDK, and the records it skipped."""

    async def go() -> tuple[list[Delivery], list[str]]:
        async with HubClient(
            party, bootstrap=hub.bootstrap, keys=hub.keys, group_id=f"t-{uuid.uuid4().hex[:8]}"
        ) as client:
            got = [d async for d in client.deliveries(follow=False, poll_timeout=0.3)]
            return got, list(client.rejected)

    return asyncio.run(go())


def committed(hub: RunningHub, origin: str) -> int:
    topic, partition, _ = origin.rsplit("/", 2)

    async def read() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=hub.bootstrap, group_id="hub-router")
        await consumer.start()
        try:
            return await consumer.committed(TopicPartition(topic, int(partition))) or -1
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_header_name_not_utf8_is_quarantined_and_the_worker_routes_on(
    own_hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = own_hub
    worker = hub.supervisor.workers[0]
    origin = produce_raw_header_name(hub, b"\xff\xfe-name", monkeypatch)
    good = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))

    # the bad record: one rejected audit record naming the reason, a quarantine copy
    records = hub.wait_records(f"unparsed:{origin}")
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert records[0].reason.startswith("undecodable_record: ")
    assert "0xfffe2d6e616d65" in records[0].reason  # the raw name, in hex
    copy = wait_for(lambda: quarantine_copy(hub, origin), what=f"quarantine copy of {origin}")
    assert dict(copy)["hub_reason"] == b"undecodable_record"
    assert ("\\xff\\xfe-name", b"x") in copy  # the name made safe, the value as sent

    # the good event after it: routed by the same worker, which never died
    assert len(hub.wait_records(good, at_least=2)) >= 2
    assert worker.poll() is None
    assert hub.supervisor.workers == [worker]

    # and the bad record's offset is committed (only after its outputs were on the broker)
    offset = int(origin.rsplit("/", 1)[1])
    wait_for(lambda: committed(hub, origin) > offset, what=f"commit past {origin}")

    # a party's own consumer (the SDK, and so the webhook dispatcher) skips such a record,
    # noted, and reads on: here the hub's rejection notice for the record above
    bad_out = produce_raw_header_name(hub, b"\xc0out", monkeypatch, topic=f"hub.out.{PARTY}")

    def read_past_it() -> list[Delivery] | None:
        got, rejected = read_out(hub, PARTY)
        notices = [d for d in got if d.data.get("origin") == origin]
        return notices if bad_out in rejected and notices else None

    notices = wait_for(read_past_it, what="the SDK to skip the bad record and read the notice")
    assert notices[0].data["reason"] == "undecodable_record"

    # and on hub.audit: the audit sink (a plain aiokafka consumer in its own process) refuses
    # it as unreadable and writes on
    produce_raw_header_name(hub, b"\xffaudit", monkeypatch, topic="hub.audit")
    later = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    assert len(hub.wait_records(later, at_least=2)) >= 2
    assert worker.poll() is None
    log = hub.supervisor.worker_log
    wait_for(
        lambda: '"event": "audit_message_refused"' in log.read_text(),
        what="the audit sink to refuse the record",
    )
    assert worker.poll() is None
