"""Readers stop at the true end of a partition (``hub.broker.offsets``).

The embedded broker answers ListOffsets with the base offset of a partition's last record
batch; fetches carry the true high watermark. Records produced in batches (a linger, as the
router's producer does) must all be read by ``hub audit reconcile``'s raw reader and by the
SDK's non-following read, and ``end_offsets`` must say one past the last record.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.audit.reconcile import read_outbound
from hub.broker import EmbeddedBroker, topics
from hub.broker.offsets import end_offsets
from tests.conftest import unique

pytestmark = pytest.mark.integration

PARTIES = 4
PARTITIONS = 3
RECORDS = 600  # 50 a partition, produced with a linger: several records a batch


async def _produce_in_batches(bootstrap: str, parties: list[str]) -> Counter[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(topics.outbound(p), num_partitions=PARTITIONS, replication_factor=1)
                for p in parties
            ]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        sent = []
        for i in range(RECORDS):
            party = parties[i % PARTIES]
            headers = [
                ("ce_id", f"evt-{i}".encode()),
                ("ce_hubrecipient", party.encode()),
                ("ce_source", b"/parties/west-mercia-police"),
            ]
            sent.append(
                await producer.send(
                    topics.outbound(party), b"sealed", partition=i % PARTITIONS, headers=headers
                )
            )
        written = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return Counter(TopicPartition(m.topic, m.partition) for m in written)


def test_readers_reach_the_last_record_of_batched_partitions(broker: EmbeddedBroker) -> None:
    parties = [unique("offsets") for _ in range(PARTIES)]

    async def run() -> None:
        written = await _produce_in_batches(broker.bootstrap, parties)
        assert sum(written.values()) == RECORDS
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(written))
            ends = await end_offsets(consumer, list(written))
        finally:
            await consumer.stop()
        assert ends == dict(written)  # one past the last record of each partition
        outbound = await read_outbound(broker.bootstrap, parties=parties)
        assert sorted(d.event_id for d in outbound.deliveries) == sorted(
            f"evt-{i}" for i in range(RECORDS)
        )

    asyncio.run(run())
