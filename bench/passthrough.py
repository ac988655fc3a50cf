"""Passthrough throughput on the embedded broker: the floor the hub is compared against.

The hub's throughput is reported as a ratio to a bare faust passthrough agent and to raw
aiokafka on the same broker in the same run (docs/benchmarks.md). This benchmark measures those
baselines (the hub's own end-to-end run is a later benchmark that reads this record):

- **raw aiokafka**: one consumer (partitions assigned, no group) and one producer in one
  loop, ``getmany`` then ``send`` each record without awaiting its delivery, ``flush`` at
  the end; timed from the first record read to the last one acknowledged.
- **bare faust, awaited**: an agent that ``await``s ``topic.send`` for every record.
- **bare faust, batched**: ``stream.take(batch, within)`` and ``send_soon`` for each.

Each faust variant runs as a real worker process (``python -m bench.passthrough worker``,
as ``hub up`` runs its router) with the hub's app settings (``acks=-1``, raw serializers,
no web server). Once one warm-up record has passed through it (so start-up and the group
rebalance are not timed), the clock runs from producing the first of ``messages`` records
of ``message_bytes`` bytes to reading the last back from the output topic. Raw aiokafka
reads the same number of preloaded records. Every variant gets its own topics.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._harness import ROOT, Benchmark, CpuMeter, Measured
from hub.broker import EmbeddedBroker

__all__ = ["BENCHMARK", "run"]

COLUMNS = [
    "variant",
    "messages",
    "msg/s",
    "ratio to raw aiokafka",
    "elapsed s",
    "worker CPU ms/msg",
    "broker CPU ms/msg",
]


async def _create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def _preload(bootstrap: str, topic: str, *, messages: int, size: int) -> None:
    producer = _producer(bootstrap)
    await producer.start()
    try:
        body = os.urandom(size // 2).hex().encode()[:size]
        for i in range(messages):
            await producer.send(topic, value=body, key=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()


def _producer(bootstrap: str) -> Any:
    # 1 MiB batches: aiokafka's 16 KiB default sends a request per 16 records of 1 KB
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )


def _reader(bootstrap: str) -> Any:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


async def _raw(
    bootstrap: str, src: str, dst: str, *, messages: int, partitions: int, meter: CpuMeter
) -> float:
    """Consume ``src`` and produce each record to ``dst``; seconds from first read to done."""
    consumer = _reader(bootstrap)
    producer = _producer(bootstrap)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign([TopicPartition(src, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        seen, t0 = 0, 0.0
        while seen < messages:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if batches and not seen:
                t0 = time.perf_counter()
                meter.start()
            for records in batches.values():
                for record in records:
                    await producer.send(dst, value=record.value, key=record.key)
                    seen += 1
        await producer.flush()
        return time.perf_counter() - t0
    finally:
        await producer.stop()
        await consumer.stop()


async def _through_worker(
    bootstrap: str,
    src: str,
    dst: str,
    *,
    messages: int,
    size: int,
    partitions: int,
    within: float,
    meter: CpuMeter,
) -> float:
    """Seconds for ``messages`` records to pass a running worker, once it is warm.

    One record goes through first, so start-up and the group rebalance are not timed; then
    the clock runs from the first record produced to the last one read back.
    """
    reader = _reader(bootstrap)
    producer = _producer(bootstrap)
    await reader.start()
    await producer.start()
    deadline = time.monotonic() + within
    seen = 0

    async def read_until(count: int) -> None:
        nonlocal seen
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dst}: {seen} of {count} records before the deadline")
            batches = await reader.getmany(timeout_ms=100, max_records=5000)
            seen += sum(len(records) for records in batches.values())

    try:
        reader.assign([TopicPartition(dst, p) for p in range(partitions)])
        await reader.seek_to_beginning()
        await producer.send_and_wait(src, value=b"warm-up")
        await read_until(1)
        body = os.urandom(size // 2).hex().encode()[:size]
        t0 = time.perf_counter()
        meter.start()
        for i in range(messages):
            await producer.send(src, value=body, key=str(i).encode())
        await producer.flush()
        await read_until(messages + 1)
        return time.perf_counter() - t0
    finally:
        await producer.stop()
        await reader.stop()


def _faust(
    bootstrap: str,
    src: str,
    dst: str,
    *,
    mode: str,
    params: Mapping[str, Any],
    broker: int,
) -> tuple[float, dict[str, float]]:
    """Run a bare faust worker process over ``src`` -> ``dst`` and time records through it.

    Returns the seconds taken and the CPU milliseconds per record of the worker, the broker
    and this process over the same span.
    """
    datadir = tempfile.TemporaryDirectory(prefix="bench-faust-")  # faust's table dir
    cmd = [sys.executable, "-m", "bench.passthrough", "worker", bootstrap, src, dst, mode]
    cmd += [str(params["partitions"]), str(params["batch"]), str(params["within_s"])]
    cmd += [datadir.name]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    meter = CpuMeter({"worker": [proc.pid], "broker": [broker], "bench": [os.getpid()]})
    try:
        seconds = asyncio.run(
            _through_worker(
                bootstrap,
                src,
                dst,
                messages=int(params["messages"]),
                size=int(params["message_bytes"]),
                partitions=int(params["partitions"]),
                within=float(params["timeout_s"]),
                meter=meter,
            )
        )
        return seconds, meter.ms_per(int(params["messages"]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        datadir.cleanup()


def run(params: Mapping[str, Any]) -> Measured:
    """Start a broker, measure raw aiokafka and the two faust variants on it, stop it."""
    messages, partitions = int(params["messages"]), int(params["partitions"])
    size = int(params["message_bytes"])
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    elapsed: dict[str, float] = {}
    cpu: dict[str, dict[str, float]] = {}  # ms per message, per process, for each variant
    try:
        for variant in ("raw aiokafka", "faust awaited", "faust batched"):
            tag = uuid.uuid4().hex[:8]
            src, dst = f"bench-{tag}-in", f"bench-{tag}-out"
            asyncio.run(_create_topics(bootstrap, [src, dst], partitions))
            if variant == "raw aiokafka":
                asyncio.run(_preload(bootstrap, src, messages=messages, size=size))
                meter = CpuMeter({"worker": [os.getpid()], "broker": [broker.pid or 0]})
                elapsed[variant] = asyncio.run(
                    _raw(bootstrap, src, dst, messages=messages, partitions=partitions, meter=meter)
                )
                cpu[variant] = meter.ms_per(messages)
            else:
                mode = variant.split()[1]
                elapsed[variant], cpu[variant] = _faust(
                    bootstrap, src, dst, mode=mode, params=params, broker=broker.pid or 0
                )
    finally:
        broker.stop()
    raw_rate = messages / elapsed["raw aiokafka"]
    measurements: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for variant, seconds in elapsed.items():
        rate = messages / seconds
        measurements.append(
            {
                "operation": "passthrough",
                "variant": variant,
                "messages": messages,
                "message_bytes": size,
                "elapsed_s": round(seconds, 3),
                "msgs_per_s": round(rate, 1),
                "ratio_to_raw": round(rate / raw_rate, 4),
                "cpu_ms_per_msg": cpu[variant],
            }
        )
        rows.append(
            [
                variant,
                messages,
                round(rate, 0),
                round(rate / raw_rate, 3),
                round(seconds, 2),
                cpu[variant]["worker"],
                cpu[variant]["broker"],
            ]
        )
    notes = [
        f"{messages} records of {size} B, {partitions} partition(s), Tansu in memory, "
        "acks=all; faust batched takes "
        f"{params['batch']} records (or what arrives within {params['within_s']} s).",
        "The design's own figures (same kind of machine): raw aiokafka about 80,000 msg/s; "
        "bare faust about 3,500 msg/s awaited and about 5,700 msg/s batched.",
        "CPU per message: user plus system time from /proc over the timed part; the worker is "
        "the process that consumes and produces (this one for raw aiokafka).",
    ]
    return Measured(measurements=measurements, columns=COLUMNS, rows=rows, notes=notes)


def _worker(
    bootstrap: str,
    src: str,
    dst: str,
    mode: str,
    partitions: int,
    batch: int,
    within: float,
    datadir: str,
) -> None:
    """The faust side (in its own process): a passthrough agent, run until terminated."""
    import faust

    app = faust.App(
        f"bench-passthrough-{mode}-{src}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        datadir=datadir,
        topic_partitions=partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    source = app.topic(src, key_type=bytes, value_type=bytes, partitions=partitions)
    sink = app.topic(dst, key_type=bytes, value_type=bytes, partitions=partitions)

    async def awaited(stream: Any) -> None:
        async for value in stream:
            await sink.send(value=value)

    async def batched(stream: Any) -> None:
        async for values in stream.take(batch, within=within):
            for value in values:
                sink.send_soon(value=value)

    app.agent(source, name="passthrough")(awaited if mode == "awaited" else batched)
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # else faust sets the root logger to DEBUG (as the hub's worker does)
    worker.execute_from_commandline()


BENCHMARK = Benchmark(
    name="passthrough",
    summary="Consume-and-produce throughput on the embedded broker: raw aiokafka and a bare "
    "faust agent (awaited, batched), the baselines for the hub's own throughput.",
    run=run,
    defaults={
        "messages": 20000,
        "message_bytes": 1024,
        "partitions": 1,
        "batch": 500,
        "within_s": 0.05,
        "timeout_s": 120.0,
    },
    quick={"messages": 300, "timeout_s": 60.0},
)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _bootstrap, _src, _dst, _mode, _partitions, _batch, _within, _datadir = sys.argv[2:10]
    _worker(_bootstrap, _src, _dst, _mode, int(_partitions), int(_batch), float(_within), _datadir)
