"""The router's faust consumer: a short fetch wait, and a bounded take from the fetcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer

from hub.agents.app import create_app
from hub.agents.transport import HubApp
from hub.broker.fetch import FETCH_WAIT_MS
from hub.policies import load_protocol
from hub.settings import HubSettings


@asynccontextmanager
async def worker_consumer(app: faust.App) -> AsyncIterator[AIOKafkaConsumer]:
    """The aiokafka consumer a worker of ``app`` would fetch with, never started."""
    thread = app.consumer._thread  # type: ignore[attr-defined]  # made with the consumer
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert isinstance(consumer, AIOKafkaConsumer)
        yield consumer
    finally:
        await consumer.stop()  # never started: releases the client
        thread.thread_loop.close()  # the consumer thread's own loop, never run


@pytest.mark.asyncio
async def test_the_worker_consumer_uses_the_hub_fetch_wait(tmp_path: Path) -> None:
    # the embedded broker does not answer a fetch as soon as data arrives, so this wait
    # bounds the latency of every hop (hub.broker.fetch)
    app = HubApp("fetch-test", broker="kafka://127.0.0.1:1", web_enabled=False, datadir=tmp_path)
    async with worker_consumer(app) as consumer:
        assert consumer._fetch_max_wait_ms == FETCH_WAIT_MS < 1500


@pytest.mark.asyncio
async def test_the_worker_takes_a_bounded_number_of_records_at_a_time(tmp_path: Path) -> None:
    # unbounded, a backlog arrives from the fetcher whole and sets the worker's memory
    # high-water mark (measured: 126 MiB after 10,000 events flat out, 107 with 50 at a time)
    settings = HubSettings(data_dir=tmp_path, poll_records=37)
    app = create_app(settings, protocol=load_protocol(settings.protocol), bootstrap="127.0.0.1:1")
    async with worker_consumer(app) as consumer:
        assert consumer._max_poll_records == 37
    assert HubSettings(data_dir=tmp_path).poll_records == 50
