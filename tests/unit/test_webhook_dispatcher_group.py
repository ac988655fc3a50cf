"""The webhook dispatcher's consumer group keeps the hub's session timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hub.broker import topics as broker_topics
from hub.settings import HubSettings
from hub.webhooks import dispatcher
from hub.webhooks.config import WebhookEndpoint


class MadeError(Exception):
    """The consumer's arguments are all these tests need."""


@pytest.mark.parametrize(("session", "heartbeat"), [(10.0, 3000), (4.0, 1333)])
def test_the_dispatcher_joins_its_group_with_the_hubs_session_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session: float, heartbeat: int
) -> None:
    """HUB_SESSION_TIMEOUT, as for the workers: a restarted dispatcher waits that long for the
    dead one's partitions, not aiokafka's 10 s; a few heartbeats fit in a session."""
    seen: dict[str, Any] = {}

    def consumer(*topics: str, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise MadeError

    async def no_topics(*args: Any, **kwargs: Any) -> None:
        return None

    monkeypatch.setattr(dispatcher, "AIOKafkaConsumer", consumer)
    monkeypatch.setattr(broker_topics, "ensure_topics", no_topics)
    settings = HubSettings(data_dir=tmp_path, session_timeout=session)
    endpoint = WebhookEndpoint(
        party="west-mercia-police", url="https://example.invalid/hook", secret=SecretStr("s" * 32)
    )
    worker = dispatcher.WebhookDispatcher(endpoint, settings=settings, bootstrap="127.0.0.1:9")
    with pytest.raises(MadeError):
        asyncio.run(worker.run())
    assert seen["group_id"] == "hub-webhook.west-mercia-police"
    assert seen["session_timeout_ms"] == int(session * 1000)
    assert seen["heartbeat_interval_ms"] == heartbeat
