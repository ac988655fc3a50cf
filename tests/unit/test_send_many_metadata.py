"""``TrackingProducer.send_many`` when the topic's metadata goes away midway (review of 9993f71).

A metadata response that answers a topic with an error (a leader election, a broker restart)
drops the topic from aiokafka's ``ClusterMetadata`` until the next good answer. aiokafka's
``send`` waits for the topic's metadata before every record, so a record sent then waits; a
``send_many`` that asked once per call and then awaited (a full batch draining) must wait as
well, not fail the worker on ``list(None)`` in ``_partition``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from hub.agents.transport import TrackingProducer
from hub.envelope.wire import WireMessage


def test_send_many_waits_for_metadata_a_refresh_dropped_while_a_batch_drained() -> None:
    known: dict[str, int] = {"hub.out.p0": 1}
    waited: list[str] = []

    async def run() -> None:
        producer = TrackingProducer(
            bootstrap_servers="127.0.0.1:1", partitioner=DefaultPartitioner(), max_batch_size=200
        )

        async def wait_on_metadata(topic: str) -> set[int]:
            if topic not in known:  # aiokafka asks the broker only then
                waited.append(topic)
                known[topic] = 1  # the next metadata response answers it again
            return set(range(known[topic]))

        def partitions(topic: str) -> set[int] | None:
            return set(range(known[topic])) if topic in known else None

        producer.client._wait_on_metadata = wait_on_metadata
        producer.client.add_topic = lambda topic: None
        producer._metadata.partitions_for_topic = partitions
        producer._metadata.available_partitions_for_topic = partitions
        messages = [WireMessage("hub.out.p0", b"k", bytes([i]) * 150) for i in range(3)]
        task = asyncio.ensure_future(producer.send_many(messages))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not task.done()  # the second record waits for the first one's batch to drain
        del known["hub.out.p0"]  # meanwhile a metadata update answered the topic with an error
        accumulator: Any = producer._message_accumulator
        records = []
        while not task.done():
            for tp in list(accumulator._batches):
                for batch in accumulator._batches.pop(tp):
                    batch.drain_ready()
                    batch.get_data_buffer()
                    batch.done(base_offset=0)
                    records.append(batch.record_count)
            await asyncio.sleep(0)
        futures = task.result()  # not TypeError from _partition
        for tp in list(accumulator._batches):
            for batch in accumulator._batches.pop(tp):
                batch.drain_ready()
                batch.get_data_buffer()
                batch.done(base_offset=0)
        await asyncio.gather(*futures)
        producer._closed = True

    asyncio.run(run())
    assert waited == ["hub.out.p0"]  # asked again once the topic was gone
