"""The broker's latency floor for the hub's path: two hops, the audit message first.

``bench hub`` reports the hub's publish-to-delivery latency; this is what the same path
costs with no routing at all, on the same broker, with the same topics and settings. A
forwarder process (raw aiokafka, one loop) reads every inbound topic the hub's worker
reads, with the hub's fetch wait (``hub.broker.fetch``); for each fetch it produces one
audit message and waits for the broker's acknowledgement (the hub's rule: no delivery
before its audit record is on the broker), then produces ``fanout`` copies of each record
to outbound topics with the hub's producer settings. The bench's reader is the one the hub
is measured with. What is left, hub minus floor, is the hub's own latency.

Run as ``python -m bench.latency_floor forward BOOTSTRAP FANOUT PARTITIONS TOPICS...`` by
``bench.hub_e2e``; it prints ``ready`` once it reads from the end of every input topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from hub.broker import topics
from hub.broker.fetch import FETCH_WAIT_MS
from hub.settings import HubSettings

__all__ = ["forward", "forwarder"]


async def forward(bootstrap: str, *, fanout: int, partitions: int, parties: list[str]) -> None:
    """Forward every inbound record to ``fanout`` outbound topics, audit message first."""
    defaults = HubSettings.model_fields
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=FETCH_WAIT_MS,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=int(float(defaults["producer_linger"].default) * 1000),
        max_batch_size=int(defaults["producer_batch_bytes"].default),
    )
    sources = [topics.inbound(p) for p in parties] + [topics.HUB_INBOUND]
    outputs = [topics.outbound(p) for p in parties]
    poll = int(defaults["poll_records"].default)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([TopicPartition(t, n) for t in sources for n in range(partitions)])
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        print("ready", flush=True)
        while True:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=poll)
            records = [r for batch in fetched.values() for r in batch]
            if not records:
                continue
            ids = b",".join(dict(r.headers).get("ce_id", b"") for r in records)
            await (await producer.send(topics.AUDIT, ids))  # on the broker before any copy
            for r in records:
                first = zlib.crc32(r.key or b"")
                for i in range(fanout):
                    topic = outputs[(first + i) % len(outputs)]
                    await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
    finally:
        await producer.stop()
        await consumer.stop()


@contextlib.contextmanager
def forwarder(
    bootstrap: str, *, fanout: int, partitions: int, parties: Sequence[str]
) -> Iterator[None]:
    """``forward`` in a process of its own, reading from the end of every inbound topic."""
    cmd = [sys.executable, "-m", "bench.latency_floor", "forward", bootstrap]
    cmd += [str(fanout), str(partitions), *parties]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cmd,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError("latency floor: the forwarder did not start")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__" and sys.argv[1:2] == ["forward"]:
    _bootstrap, _fanout, _partitions, *_parties = sys.argv[2:]
    asyncio.run(
        forward(_bootstrap, fanout=int(_fanout), partitions=int(_partitions), parties=_parties)
    )
