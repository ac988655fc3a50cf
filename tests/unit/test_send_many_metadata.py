"""``TrackingProducer.send_many`` when the topic's metadata goes away midway (review of 9993f71).

A metadata response that answers a topic with an error (a leader election, a broker restart)
drops the topic from aiokafka's ``ClusterMetadata`` until the next good answer
(``update_metadata`` builds the partition map from the answer). aiokafka's ``send`` waits for
the topic's metadata before every record, so a record sent then waits; a ``send_many`` that
asked once per call and then awaited (a full batch draining) must wait as well, not fail the
worker on ``list(None)`` in ``_partition``. The cluster metadata here is aiokafka's own, fed
metadata responses; no broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import LeaderNotAvailableError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataResponse_v1

from hub.agents.transport import TrackingProducer
from hub.envelope.wire import WireMessage

TOPIC = "hub.out.p0"


def _answer(producer: TrackingProducer, error: int = 0) -> None:
    """A metadata response naming ``TOPIC``: one partition led by broker 0, or ``error``."""
    partitions = [] if error else [(0, 0, 0, [0], [0])]
    producer._metadata.update_metadata(
        MetadataResponse_v1(
            brokers=[(0, "127.0.0.1", 1, None)],
            controller_id=0,
            topics=[(error, TOPIC, False, partitions)],
        )
    )


def _drain(producer: TrackingProducer) -> None:
    accumulator: Any = producer._message_accumulator
    for tp in list(accumulator._batches):
        for batch in accumulator._batches.pop(tp):
            batch.drain_ready()
            batch.get_data_buffer()
            batch.done(base_offset=0)


def test_send_many_waits_for_metadata_an_update_dropped_while_a_batch_drained() -> None:
    asked: list[str] = []

    async def run() -> None:
        producer = TrackingProducer(
            bootstrap_servers="127.0.0.1:1", partitioner=DefaultPartitioner(), max_batch_size=200
        )
        _answer(producer)

        async def wait_on_metadata(topic: str) -> set[int]:
            # aiokafka's: at once while the topic is known, else it asks the broker
            if producer._metadata.partitions_for_topic(topic) is None:
                asked.append(topic)
                _answer(producer)
            return set(producer._metadata.partitions_for_topic(topic))

        producer.client._wait_on_metadata = wait_on_metadata
        producer.client.add_topic = lambda topic: None
        messages = [WireMessage(TOPIC, b"k", bytes([i]) * 150) for i in range(3)]
        task = asyncio.ensure_future(producer.send_many(messages))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # the second record waits for the first one's batch to drain
        _answer(producer, error=LeaderNotAvailableError.errno)  # meanwhile: the topic dropped
        assert producer._metadata.partitions_for_topic(TOPIC) is None
        while not task.done():
            _drain(producer)
            await asyncio.sleep(0)
        futures = task.result()  # not TypeError from _partition
        _drain(producer)
        await asyncio.gather(*futures)
        producer._closed = True

    asyncio.run(run())
    assert asked == [TOPIC]  # asked again once the topic was gone
