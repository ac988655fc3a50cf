"""The router's faust consumer waits at most ``FETCH_WAIT_MS`` for a fetch, not faust's 1.5 s."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from hub.agents.transport import HubApp
from hub.broker.fetch import FETCH_WAIT_MS


@pytest.mark.asyncio
async def test_the_worker_consumer_uses_the_hub_fetch_wait(tmp_path: Path) -> None:
    # the embedded broker does not answer a fetch as soon as data arrives, so this wait
    # bounds the latency of every hop (hub.broker.fetch)
    app = HubApp("fetch-test", broker="kafka://127.0.0.1:1", web_enabled=False, datadir=tmp_path)
    thread = app.consumer._thread  # type: ignore[attr-defined]  # made with the consumer
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert isinstance(consumer, AIOKafkaConsumer)
        assert consumer._fetch_max_wait_ms == FETCH_WAIT_MS < 1500
    finally:
        await consumer.stop()  # never started: releases the client
        thread.thread_loop.close()  # the consumer thread's own loop, never run
