"""A producer linger strands no record (``hub.agents.transport.TrackingProducer``).

aiokafka 0.14 does not track a topic it learnt of from a metadata answer for every topic (the
one it gets at start). The first record to a topic created after the producer started makes
its client ask for tracked topics only, and that answer drops the untracked ones from its
cluster metadata. A record still lingering for one of them then has no leader, and the
sender waits for a metadata update that never names its topic: the record is sent only when
other traffic to that topic arrives (or it expires after ``request_timeout_ms``; faust's is
20 minutes). Without a linger the batch is usually drained before the answer lands; with
one it waits long enough to be caught. The hub saw it as a ban's expiry notices held in the
worker with a 5 ms linger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.agents.transport import HubApp, TrackingProducer
from hub.broker import EmbeddedBroker
from tests.conftest import unique

pytestmark = pytest.mark.integration

LINGER_MS = 1000  # long enough that the metadata answer lands first, even on a busy machine
BOUND_S = 30.0  # generous: the acknowledgement comes one linger after the send, or never

Send = Callable[[str, bytes], Awaitable[Awaitable[Any]]]


async def _create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _lingering_then_new_topic(
    bootstrap: str, send: Send, known: str
) -> tuple[Awaitable[Any], str]:
    """A record to ``known`` lingers while the first record to a new topic goes out.

    ``known`` existed when the producer started; the new topic is created after. Returns the
    first record's future (the second is acknowledged before this returns) and the new topic.
    """
    later = unique("linger-later")
    await _create(bootstrap, later)
    lingering = await send(known, b"lingering")
    await asyncio.wait_for(await send(later, b"first to a new topic"), BOUND_S)
    return lingering, later


def test_unpatched_aiokafka_strands_a_lingering_record_until_other_traffic(
    broker: EmbeddedBroker,
) -> None:
    """The bug, on aiokafka's own producer: held until another record to its topic."""

    async def run() -> None:
        known = unique("linger-known")
        await _create(broker.bootstrap, known)
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=LINGER_MS, request_timeout_ms=60_000
        )
        await producer.start()
        try:

            async def send(topic: str, value: bytes) -> Awaitable[Any]:
                fut: Awaitable[Any] = await producer.send(topic, value)
                return fut

            lingering, _ = await _lingering_then_new_topic(broker.bootstrap, send, known)
            # the cause: the topic fell out of the producer's metadata with its leader
            assert known not in producer.client._topics
            assert producer.client.cluster.leader_for_partition(TopicPartition(known, 0)) is None
            done, _ = await asyncio.wait(
                [asyncio.ensure_future(lingering)], timeout=3 * LINGER_MS / 1000
            )
            assert not done, "the lingering record was sent: has aiokafka fixed the bug?"
            # other traffic to the topic: the send tracks it, and both records go out
            other = await send(known, b"other traffic")
            await asyncio.wait_for(asyncio.gather(lingering, other), BOUND_S)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_tracking_producer_sends_the_lingering_record_without_other_traffic(
    broker: EmbeddedBroker,
) -> None:
    """The fix: the record is acknowledged, and nothing else is sent to its topic."""

    async def run() -> None:
        known = unique("linger-known")
        await _create(broker.bootstrap, known)
        producer = TrackingProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=LINGER_MS, request_timeout_ms=60_000
        )
        await producer.start()
        try:

            async def send(topic: str, value: bytes) -> Awaitable[Any]:
                fut: Awaitable[Any] = await producer.send(topic, value)
                return fut

            lingering, later = await _lingering_then_new_topic(broker.bootstrap, send, known)
            assert {known, later} <= producer.client._topics
            meta = await asyncio.wait_for(lingering, BOUND_S)
            assert (meta.topic, meta.offset) == (known, 0)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_hub_app_producer_tracks_its_topics_and_lingers(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The router's own path: ``app.producer.send`` of a ``HubApp`` with a linger."""

    async def run() -> None:
        known = unique("linger-known")
        await _create(broker.bootstrap, known)
        app = HubApp(
            unique("linger-app"),
            broker=f"kafka://{broker.bootstrap}",
            producer_linger=LINGER_MS / 1000,
            web_enabled=False,
            datadir=tmp_path,
        )
        await app.producer.start()
        try:
            aiokafka_producer = app.producer._producer  # type: ignore[attr-defined]
            assert isinstance(aiokafka_producer, TrackingProducer)
            # faust's producer_linger is in seconds; aiokafka's accumulator keeps seconds too
            assert aiokafka_producer._message_accumulator._linger_time == LINGER_MS / 1000

            async def send(topic: str, value: bytes) -> Awaitable[Any]:
                return await app.producer.send(  # as the router sends
                    topic, None, value, None, None, None
                )

            lingering, _ = await _lingering_then_new_topic(broker.bootstrap, send, known)
            meta = await asyncio.wait_for(lingering, BOUND_S)
            assert (meta.topic, meta.offset) == (known, 0)
        finally:
            await app.producer.stop()

    asyncio.run(run())
