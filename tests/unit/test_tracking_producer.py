"""``TrackingProducer.send_many`` and ``KeptHashPartitioner`` (``hub.agents.transport``).

``send_many`` must put into aiokafka's accumulator exactly what ``send`` one record at a time
does: the same records, partitions and order per partition. The partitioner must answer
aiokafka's ``DefaultPartitioner`` for every key. No broker: the producer's metadata is
stubbed (the integration tests run the real one).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.agents import transport
from hub.agents.transport import KeptHashPartitioner, TrackingProducer
from hub.envelope.wire import WireMessage


def _producer(partitions: dict[str, int], **kwargs: Any) -> TrackingProducer:
    producer = TrackingProducer(
        bootstrap_servers="127.0.0.1:1", partitioner=DefaultPartitioner(), **kwargs
    )
    waited: list[str] = []

    async def wait_on_metadata(topic: str) -> None:
        waited.append(topic)

    producer.client._wait_on_metadata = wait_on_metadata
    producer.client.add_topic = lambda topic: None
    producer._metadata.partitions_for_topic = lambda t: set(range(partitions[t]))
    producer._metadata.available_partitions_for_topic = lambda t: set(range(partitions[t]))
    producer.waited = waited
    return producer


def _close(producer: TrackingProducer) -> None:
    """Never started, nothing to stop: marked closed so it does not warn when collected."""
    producer._closed = True


def _queued(producer: TrackingProducer) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    """The records in the accumulator per partition, in order (drained and resolved)."""
    found: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    accumulator = producer._message_accumulator
    for tp in list(accumulator._batches):
        for batch in accumulator._batches.pop(tp):
            batch.drain_ready()  # as the sender does: a send waiting for room goes on
            buffer = batch.get_data_buffer()
            batch.done(base_offset=0)
            records = DefaultRecordBatch(bytearray(buffer))  # as a consumer reads them
            found.setdefault((tp.topic, tp.partition), []).extend(
                (r.key, r.value, tuple(r.headers)) for r in records
            )
    return found


def test_the_default_partitioner_is_swapped_for_the_kept_hash_one_and_no_other() -> None:
    async def build() -> tuple[Any, Any]:
        swapped = TrackingProducer(bootstrap_servers="x:1", partitioner=DefaultPartitioner())
        mine = lambda key, all_, available: 0  # noqa: E731
        kept = TrackingProducer(bootstrap_servers="x:1", partitioner=mine)
        result = (swapped._partitioner, kept._partitioner is mine)
        _close(swapped)
        _close(kept)
        return result

    partitioner, kept = asyncio.run(build())
    assert isinstance(partitioner, KeptHashPartitioner)
    assert kept


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(max_size=40), min_size=1, max_size=30),
    counts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=4),
)
def test_the_kept_hash_partitioner_answers_the_default_one(
    keys: list[bytes], counts: list[int]
) -> None:
    partitioner = KeptHashPartitioner()
    for count in counts:  # a topic's partitions may change between calls
        partitions = list(range(count))
        for key in keys + keys:
            assert partitioner(key, partitions, partitions) == DefaultPartitioner()(
                key, partitions, partitions
            )


def test_the_kept_hashes_start_again_past_their_limit(monkeypatch: Any) -> None:
    monkeypatch.setattr(transport, "_KEPT_HASHES", 3)
    partitioner = KeptHashPartitioner()
    keys = [f"k{i}".encode() for i in range(10)]
    for key in keys:
        assert partitioner(key, list(range(7)), []) == (murmur2(key) & 0x7FFFFFFF) % 7
    assert len(partitioner._hashes) <= 3


def test_a_record_without_a_key_or_with_a_bytearray_key_goes_as_aiokafka_sends_it() -> None:
    partitioner = KeptHashPartitioner()
    assert partitioner(None, [0, 1, 2], [2]) == 2  # random among the available
    assert partitioner(bytearray(b"case-1"), [0, 1, 2], [0, 1, 2]) == DefaultPartitioner()(
        b"case-1", [0, 1, 2], [0, 1, 2]
    )
    assert partitioner._hashes == {}


def _messages() -> list[WireMessage]:
    out = []
    for event in range(40):
        key = None if event % 7 == 3 else f"CASE-{event % 9}".encode()
        for recipient in range(event % 4 + 1):
            out.append(
                WireMessage(
                    topic=f"hub.out.p{recipient}",
                    key=key,
                    value=f"{event}/{recipient}".encode() * 200,
                    headers=[("ce_id", f"id-{event}".encode()), ("hub_x", b"y")],
                )
            )
    return out


def test_send_many_queues_what_send_one_by_one_queues() -> None:
    partitions = {f"hub.out.p{r}": 5 + r for r in range(4)}
    messages = [m for m in _messages() if m.key is not None]  # a None key is random

    async def run() -> tuple[Any, Any, list[str]]:
        one = _producer(partitions)
        many = _producer(partitions)
        futures_one = [
            await one.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages
        ]
        futures_many = await many.send_many(messages)
        # one future per batch touched (and per record that opened one), not per record
        assert len(futures_many) < len(futures_one) == len(messages)
        by_one, by_many = _queued(one), _queued(many)
        await asyncio.gather(*futures_one, *futures_many)
        _close(one)
        _close(many)
        return by_one, by_many, many.waited

    by_one, by_many, waited = asyncio.run(run())
    assert by_many == by_one
    assert sum(len(v) for v in by_many.values()) == len(messages)
    assert sorted(waited) == sorted(partitions)  # metadata asked once per topic


def test_send_many_sends_keyless_records_and_waits_for_a_full_batch_to_drain() -> None:
    """A partition's batch filling up midway: send_many waits for the drain, as send does."""
    partitions = {f"hub.out.p{r}": 1 for r in range(4)}
    messages = _messages()

    async def run() -> dict[tuple[str, int], list[tuple[Any, ...]]]:
        many = _producer(partitions, max_batch_size=16 * 1024)
        drained: dict[tuple[str, int], list[tuple[Any, ...]]] = {}

        async def drain() -> None:
            while True:
                await asyncio.sleep(0)
                for tp, records in _queued(many).items():
                    drained.setdefault(tp, []).extend(records)

        drainer = asyncio.ensure_future(drain())
        await asyncio.gather(*await many.send_many(messages))
        drainer.cancel()
        for tp, records in _queued(many).items():
            drained.setdefault(tp, []).extend(records)
        _close(many)
        return drained

    # more than one 16 KiB batch's worth for a partition: send_many had to wait for a drain
    assert sum(len(m.value) for m in messages if m.topic == "hub.out.p0") > 16 * 1024
    drained = asyncio.run(run())
    expected: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for m in messages:
        expected.setdefault((m.topic, 0), []).append(
            (m.key, m.value, tuple((n, v) for n, v in m.headers))
        )
    assert drained == expected


def _batches(producer: TrackingProducer) -> list[Any]:
    return [b for queue in producer._message_accumulator._batches.values() for b in queue]


def test_send_many_futures_resolve_only_once_every_batch_is_on_the_broker() -> None:
    partitions = {f"hub.out.p{r}": 3 for r in range(4)}
    messages = [m for m in _messages() if m.key is not None]

    async def run() -> None:
        many = _producer(partitions, max_batch_size=1024 * 1024)
        await many.send(messages[0].topic, b"before", key=messages[0].key)  # an open batch
        waiters = await many.send_many(messages)
        batches = _batches(many)
        assert len(batches) > 1
        for batch in batches[:-1]:
            batch.drain_ready()
            batch.done(base_offset=0)
        await asyncio.sleep(0)
        assert not all(w.done() for w in waiters)  # the last batch is not on the broker
        batches[-1].drain_ready()
        batches[-1].done(base_offset=0)
        await asyncio.gather(*waiters)
        _close(many)

    asyncio.run(run())


def test_a_failed_batch_fails_send_many_and_a_cancelled_waiter_leaves_the_batch_be() -> None:
    partitions = {"hub.out.p0": 1}
    messages = [m for m in _messages() if m.topic == "hub.out.p0"][:5]

    async def run() -> None:
        many = _producer(partitions)
        await many.send("hub.out.p0", b"before", key=b"k")  # the open batch they join
        waiters = await many.send_many(messages)
        (batch,) = _batches(many)
        assert len(waiters) == 1
        waiter = asyncio.ensure_future(asyncio.gather(*waiters))
        await asyncio.sleep(0)
        waiter.cancel()  # a stopping pipeline cancels its wait ...
        await asyncio.sleep(0)
        assert not batch.future.cancelled()  # ... the batch itself goes on
        again = await many.send_many(messages[:1])
        batch.failure(exception=KafkaTimeoutError())
        with pytest.raises(KafkaTimeoutError):
            await asyncio.gather(*again)
        _close(many)

    asyncio.run(run())
