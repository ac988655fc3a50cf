"""``bench.latency_floor``'s forwarder: every inbound record, ``fanout`` copies, audit first.

Its own broker (not the shared one): the forwarder writes ``hub.audit``, which the shared
hub's audit sink reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer

from bench.latency_floor import forwarder
from hub.broker import EmbeddedBroker, topics
from hub.broker.topics import all_topics, ensure_topics
from tests.conftest import event_ids_on, records_on, wait_for

PARTIES = ["north-police", "south-council", "east-health"]
FANOUT = 2


@pytest.fixture
def floor() -> Iterator[str]:
    with EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, all_topics(PARTIES), partitions=2))
        with forwarder(broker.bootstrap, fanout=FANOUT, partitions=2, parties=PARTIES):
            yield broker.bootstrap


async def _publish(bootstrap: str, ids: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n, event_id in enumerate(ids):
            topic = topics.inbound(PARTIES[n % len(PARTIES)])
            headers = [("ce_id", event_id.encode())]
            await producer.send_and_wait(topic, b"sealed", key=event_id.encode(), headers=headers)
    finally:
        await producer.stop()


def test_each_record_is_copied_fanout_times_and_audited_first(floor: str) -> None:
    ids = [f"floor-{n}" for n in range(6)]
    asyncio.run(_publish(floor, ids))

    def copies() -> dict[str, int] | None:
        counts = dict.fromkeys(ids, 0)
        for party in PARTIES:
            for event_id, n in event_ids_on(floor, topics.outbound(party)).items():
                counts[event_id] += n
        return counts if min(counts.values()) >= FANOUT else None

    counts = wait_for(copies, timeout=30, what="every record forwarded")
    assert counts == dict.fromkeys(ids, FANOUT)  # exactly fanout copies, none lost or extra
    audited = wait_for(
        lambda: _audited(floor) or None, timeout=30, what="the forwarder's audit messages"
    )
    assert set(ids) <= audited


def _audited(bootstrap: str) -> set[str]:
    """Event ids the audit messages on ``hub.audit`` name (each: ids joined by commas)."""
    named: set[str] = set()
    for record in records_on(bootstrap, [topics.AUDIT]):
        named.update((record.value or b"").decode().split(","))
    return named
