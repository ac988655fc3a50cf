"""Webhook delivery on the embedded broker, to a real local HTTP server that checks signatures.

`hub up` (the supervisor) starts the dispatcher because two parties have webhooks: one
endpoint fails twice per message and then accepts, the other is down. The first party gets
the delivery on the third attempt, signed, and acknowledges it; the second's delivery ends
on hub.deadletter.<party> after the retry limit. Every attempt and outcome is audited.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.broker import EmbeddedBroker, topics
from hub.broker.offsets import end_offsets
from hub.models import AuditDecision, AuditRecord
from hub.webhooks import WebhookConfig, verify
from tests.conftest import RunningHub, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration

FLAKY = "west-mercia-police"  # fails twice per message, then 200
DOWN = "redditch-bc.housing-repairs"  # always 503
ATTEMPTS = 4


class Receiver:
    """A party's webhook endpoint: verifies every request's Standard Webhooks signature."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.accepted: dict[tuple[str, str], dict[str, Any]] = {}
        self.bad_signatures = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.strip("/")
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k: v for k, v in self.headers.items()}
                if not verify(receiver.secrets[path], headers=headers, body=body):
                    receiver.bad_signatures += 1
                    self._answer(401)
                    return
                key = (path, headers["webhook-id"])
                receiver.calls[key] += 1
                if path == "flaky" and receiver.calls[key] <= 2:
                    self._answer(503)
                elif path == "down":
                    self._answer(503)
                else:
                    receiver.accepted[key] = json.loads(body)
                    self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture
def webhook_hub(tmp_path: Path, receiver: Receiver) -> Iterator[RunningHub]:
    """Its own broker: the dispatcher starts only for webhooks configured before the hub,
    with this test's retry settings, and two hubs on one broker would share its topics and
    consumer groups (tests/conftest.py)."""
    data_dir = tmp_path / "data"
    config = WebhookConfig(data_dir / "webhooks.json")
    receiver.secrets["flaky"] = config.add(FLAKY, receiver.url("flaky"))
    receiver.secrets["down"] = config.add(DOWN, receiver.url("down"))
    assert (config.path.stat().st_mode & 0o777) == 0o600
    with EmbeddedBroker() as broker:
        running = start_hub(
            broker.bootstrap,
            data_dir,
            webhook_max_attempts=ATTEMPTS,
            webhook_backoff=0.05,
            webhook_backoff_max=0.2,
        )
        try:
            yield running
        finally:
            running.supervisor.stop()


def _by_decision(records: list[AuditRecord], party: str) -> Counter[str]:
    return Counter(r.decision.value for r in records if r.recipient == party)


def _dead_letters(hub: RunningHub, party: str) -> list[Any]:
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=hub.bootstrap)
        await consumer.start()
        try:
            topic = topics.deadletter(party)
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not tps:
                return []
            consumer.assign(tps)
            ends = await end_offsets(consumer, tps)  # the embedded broker's own is short
            await consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(*tps, timeout_ms=500)
                out += [r for rs in batch.values() for r in rs]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_webhooks_retry_sign_acknowledge_and_dead_letter(
    webhook_hub: RunningHub, receiver: Receiver
) -> None:
    hub = webhook_hub
    assert hub.supervisor.webhooks is not None  # started because webhooks are configured
    case = unique("MARAC-NW")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))

    def settled() -> list[AuditRecord] | None:
        records = hub.records(event_id)
        done = (
            _by_decision(records, FLAKY)["acknowledged"]
            and _by_decision(records, DOWN)["webhook_failed"]
        )
        return records if done else None

    records = wait_for(settled, timeout=60, what="the webhook outcomes audited")

    # the flaky endpoint: two 503s, then accepted; signed every time; acknowledged as the party
    assert receiver.bad_signatures == 0
    assert receiver.calls[("flaky", event_id)] == 3
    body = receiver.accepted[("flaky", event_id)]
    assert body["id"] == event_id
    assert body["recipient"] == FLAKY
    assert body["data"]["case_ref"] == case
    flaky = _by_decision(records, FLAKY)
    assert flaky["delivered"] == 1
    assert flaky["webhook_attempted"] == 3
    assert flaky["webhook_delivered"] == 1
    assert flaky["webhook_failed"] == 0
    reasons = sorted(
        r.reason
        for r in records
        if r.recipient == FLAKY and r.decision == AuditDecision.WEBHOOK_ATTEMPTED
    )
    assert reasons == [
        f"webhook attempt 1/{ATTEMPTS}: HTTP 503",
        f"webhook attempt 2/{ATTEMPTS}: HTTP 503",
        f"webhook attempt 3/{ATTEMPTS}: HTTP 204",
    ]

    # the endpoint that is down: ATTEMPTS tries, then the sealed original is dead-lettered
    assert receiver.calls[("down", event_id)] == ATTEMPTS
    down = _by_decision(records, DOWN)
    assert down["webhook_attempted"] == ATTEMPTS
    assert down["webhook_failed"] == 1
    assert down["webhook_delivered"] == 0
    assert down["acknowledged"] == 0
    dead = wait_for(
        lambda: [
            r
            for r in _dead_letters(hub, DOWN)
            if dict(r.headers).get("ce_id", b"").decode() == event_id
        ],
        timeout=30,
        what="the dead-letter record",
    )
    headers = dict(dead[0].headers)
    assert headers["hub_deadletter_reason"] == b"HTTP 503"
    assert headers["ce_hubrecipient"] == DOWN.encode()  # still sealed to the party
    assert case.encode() not in dead[0].value  # ciphertext, not the payload
