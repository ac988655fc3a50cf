"""The webhook dispatcher: a party's agent that turns hub.out.<party> into signed POSTs.

Trust boundary: it runs *as the party*. It holds the party's private keys, verifies the hub's
signature and decrypts each delivery exactly as the SDK does, POSTs the plaintext to the
party's endpoint, and publishes the party's acknowledgement when the endpoint answers 2xx.
Run it where the party's keys may live (the agency's side, or by the hub operator under the
partnership's agreement, like the HTTP ingress).

Per delivery, in order (one party's queue is sequential, so its order is kept):

1. POST with Standard Webhooks headers (``webhook-id`` = the event id, so the receiver can
   drop a redelivery); every attempt is audited ``webhook_attempted`` (status or error).
2. 2xx: audited ``webhook_delivered``, acknowledged as the party (``uk.csp.delivery.ack.v1``,
   so ``hub marac status`` sees it), offset committed.
3. anything else: retry after ``backoff * 2^n`` seconds with full jitter (capped) until
   ``HUB_WEBHOOK_MAX_ATTEMPTS``; then the sealed original record is copied to
   ``hub.deadletter.<party>`` (still encrypted to the party, never plaintext), audited
   ``webhook_failed``, and the queue moves on.

Audit records go to ``hub.audit`` like the router's (the sink writes them; deterministic
record ids, so a crash and redo writes each once). A crash before the commit redelivers
the one delivery in hand: at-least-once, and receivers dedupe by ``webhook-id``.

A committed offset past the end of a partition's log (the broker lost its records:
``hub.broker.lost_log``) is read from the start after the watch's grace period, as Kafka's
``OFFSET_OUT_OF_RANGE`` would do: on the embedded broker the dispatcher waited there for
good and the deliveries below it were never posted. What is read again is posted again
under the same ``webhook-id``, which receivers drop, as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.audit.stream import load_audit_stream_key, mac_headers
from hub.broker import topics
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.lost_log import CHECK_EVERY_S, LostLogWatch, rewind_lost_logs
from hub.client.sdk import HubClient
from hub.keys.file_store import FileKeyStore
from hub.log import get_logger
from hub.models import AuditDecision, AuditRecord, Delivery, record_id_for
from hub.settings import HubSettings
from hub.webhooks.config import WebhookConfig, WebhookEndpoint
from hub.webhooks.signing import headers_for

__all__ = ["Outcome", "WebhookDispatcher", "run_dispatchers"]

_log = get_logger("webhooks")


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error (connection refused, timeout)."""

    status: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """2xx counts as the party's acknowledgement."""
        return self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else f"error: {self.error}"


class WebhookDispatcher:
    """One party's dispatcher (consumer group ``hub-webhook.<party>``)."""

    def __init__(
        self,
        endpoint: WebhookEndpoint,
        *,
        settings: HubSettings,
        bootstrap: str,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.endpoint = endpoint
        self.party = endpoint.party
        self.settings = settings
        self.bootstrap = bootstrap
        self.sleep = sleep
        self._kafka = settings.kafka_security.client_kwargs()
        # the sink stores only authenticated hub.audit messages (hub.audit.stream)
        self._audit_key = load_audit_stream_key(settings)
        self.client = HubClient(
            self.party,
            bootstrap=bootstrap,
            keys=FileKeyStore(settings.keys_dir),
            security=settings.kafka_security,
            max_event_bytes=settings.max_event_bytes,
        )

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter before attempt ``attempt + 1`` (AWS's rule)."""
        ceiling = min(self.settings.webhook_backoff_max, self.settings.webhook_backoff * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret

    async def run(self) -> None:
        """Consume and dispatch until cancelled."""
        await topics.ensure_topics(
            self.bootstrap,
            [topics.deadletter(self.party)],
            partitions=self.settings.partitions,
            security=self.settings.kafka_security,
        )
        consumer = AIOKafkaConsumer(
            topics.outbound(self.party),
            bootstrap_servers=self.bootstrap,
            group_id=f"hub-webhook.{self.party}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            # the hub's, as for its workers and links (aiokafka's own: 10 s, beats every 3 s):
            # a restarted dispatcher waits that long for the dead one's partitions
            session_timeout_ms=int(self.settings.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, self.settings.session_timeout / 3) * 1000),
            **self._kafka,
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **self._kafka)
        timeout = aiohttp.ClientTimeout(total=self.settings.webhook_timeout)
        await consumer.start()
        await producer.start()
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                _log.info("webhook_dispatcher_started", party=self.party)
                watch = LostLogWatch(grace=self.settings.lost_log_grace)
                while True:
                    # not ``async for``: it waits for a record however long, and the lost-log
                    # watch must look while idle too; one record at a time, as before, so
                    # each commit covers exactly the records handled
                    rewind_lost_logs(consumer, watch, log=_log)
                    batch = await consumer.getmany(
                        timeout_ms=int(CHECK_EVERY_S * 1000), max_records=1
                    )
                    for record in (r for records in batch.values() for r in records):
                        await self.handle(record, http=http, producer=producer)
                        await consumer.commit()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.stop())
            with contextlib.suppress(Exception):
                await asyncio.shield(producer.stop())
            await self.client.close()

    async def handle(self, record: Any, *, http: aiohttp.ClientSession, producer: Any) -> None:
        """Deliver one record: POST until 2xx or the limit, then ack or dead-letter."""
        delivery = self.client.open_delivery(record)
        if delivery is None:
            return  # failed verification: not from the hub, or not for us (logged by the SDK)
        body = delivery.model_dump_json(exclude={"key"}).encode()
        limit = self.settings.webhook_max_attempts
        outcome = Outcome(status=None, error="not attempted")
        for attempt in range(limit):
            if attempt:
                await self.sleep(self.delay(attempt - 1))
            outcome = await self._post(http, delivery.id, body)
            await self._audit(
                producer,
                delivery,
                AuditDecision.WEBHOOK_ATTEMPTED,
                f"attempt {attempt + 1}/{limit}: {outcome}",
                suffix=f":{attempt + 1}",
            )
            _log.info(
                "webhook_attempt",
                event_id=delivery.id,
                party=self.party,
                attempt=attempt + 1,
                outcome=str(outcome),
            )
            if outcome.ok:
                await self._audit(producer, delivery, AuditDecision.WEBHOOK_DELIVERED, f"{outcome}")
                if delivery.wants_ack:
                    await self.client.acknowledge(delivery, note="webhook 2xx")
                return
        await producer.send_and_wait(
            topics.deadletter(self.party),
            key=record.key,
            value=record.value,
            headers=[
                *(record.headers or ()),
                ("hub_deadletter_reason", str(outcome).encode()),
                ("hub_deadletter_attempts", str(limit).encode()),
                ("hub_origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )
        await self._audit(
            producer,
            delivery,
            AuditDecision.WEBHOOK_FAILED,
            f"{limit} attempts, last {outcome}: on {topics.deadletter(self.party)}",
        )
        _log.warning("webhook_dead_lettered", event_id=delivery.id, party=self.party)

    async def _post(self, http: aiohttp.ClientSession, msg_id: str, body: bytes) -> Outcome:
        secret = self.endpoint.secret.get_secret_value()
        headers = headers_for(secret, msg_id=msg_id, body=body)
        try:
            async with http.post(self.endpoint.url, data=body, headers=headers) as response:
                await response.read()
                return Outcome(status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(status=None, error=type(exc).__name__)

    async def _audit(
        self,
        producer: Any,
        delivery: Delivery,
        decision: AuditDecision,
        reason: str,
        *,
        suffix: str = "",
    ) -> None:
        record = AuditRecord(
            record_id=record_id_for(delivery.id, self.party, decision.value + suffix),
            time=dt.datetime.now(dt.UTC),
            event_id=delivery.id,
            event_type=delivery.type,
            event_time=delivery.time,
            publisher=delivery.source.removeprefix("/parties/"),
            recipient=self.party,
            decision=decision,
            rule=delivery.rule,
            reason=f"webhook {reason}",
            protocol_hash=delivery.protocol_hash,
        )
        key = delivery.id.encode()
        value = record.model_dump_json().encode()
        headers = mac_headers(
            self._audit_key, writer=f"webhooks/{self.party}", key=key, value=value
        )
        await producer.send_and_wait(topics.AUDIT, key=key, value=value, headers=headers)


async def run_dispatchers(
    settings: HubSettings, *, bootstrap: str, parties: list[str] | None = None
) -> None:
    """Run every configured party's dispatcher (or only ``parties``) until cancelled."""
    endpoints = WebhookConfig(settings.webhooks_path).endpoints()
    chosen = [e for p, e in sorted(endpoints.items()) if parties is None or p in parties]
    dispatchers = [WebhookDispatcher(e, settings=settings, bootstrap=bootstrap) for e in chosen]
    await asyncio.gather(*(d.run() for d in dispatchers))
