"""The audit sink: write audit batches, sign checkpoints, and hold the router when it can't.

X-Road's rule, applied here: if the audit store cannot be written (or checkpoints cannot be
signed) for longer than ``HUB_AUDIT_OUTAGE_LIMIT`` seconds, the router stops delivering and
events wait in Kafka, rather than share without a record. The sink keeps retrying the same
batch with backoff, so when the store comes back everything is written and the router
resumes by itself; nothing is lost and nothing is dropped.

Checkpoints (C2SP tlog-checkpoint, signed note) are signed every ``HUB_CHECKPOINT_EVERY``
records or ``HUB_CHECKPOINT_INTERVAL`` seconds and delivered to every party, so no operator
can rewrite history without every agency being able to tell.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from hub.audit.log import AuditLog
from hub.audit.store import AuditStore
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.security import KafkaSecurity
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.errors import AuditError, KeyStoreError
from hub.log import get_logger
from hub.models import AuditBatch, AuditRecord, EventAttributes

__all__ = ["CHECKPOINT_TYPE", "AuditGate", "AuditSink", "decode_audit_message"]

CHECKPOINT_TYPE = "uk.csp.audit.checkpoint.v1"
_log = get_logger("audit-sink")
_NS = uuid.UUID("0b7f7a8e-3f8e-4d0c-9d55-5b1c1f1e2a01")
_MESSAGE: TypeAdapter[AuditBatch | AuditRecord] = TypeAdapter(
    Annotated[AuditBatch | AuditRecord, Field(union_mode="left_to_right")]
)


def decode_audit_message(value: bytes | None) -> list[AuditRecord]:
    """The records in one ``hub.audit`` message: a router's batch, or a lone record.

    Raises:
        ValueError: neither (the sink stops rather than skip an audit record).
    """
    decoded = _MESSAGE.validate_json(value or b"")
    return list(decoded.records) if isinstance(decoded, AuditBatch) else [decoded]


@dataclass
class AuditGate:
    """Shared by one worker's sink and router: open while audit writes succeed in time."""

    limit: float
    clock: Callable[[], float] = time.monotonic
    _trying_since: float | None = None
    _landed: asyncio.Event = field(default_factory=asyncio.Event)

    def trying(self) -> None:
        """A write (or signature) is under way; the clock starts if it was not running."""
        if self._trying_since is None:
            self._trying_since = self.clock()
            self._landed.clear()

    def succeeded(self) -> None:
        """The write landed: the gate is open."""
        self._trying_since = None
        self._landed.set()

    @property
    def blocked(self) -> bool:
        """Whether audit has been failing (or hanging) for longer than the limit."""
        return self._trying_since is not None and self.clock() - self._trying_since > self.limit

    async def wait_open(self) -> None:
        """Hold the caller while the gate is blocked (the router calls this per event)."""
        if not self.blocked:
            return
        _log.error("delivery_paused", reason="audit store cannot be written", limit=self.limit)
        await self._landed.wait()
        _log.info("delivery_resumed")


@dataclass
class AuditSink:
    """Writes batches to the store and signs checkpoints on schedule."""

    store: AuditStore
    log: AuditLog
    gate: AuditGate
    envelope: PartyEnvelope
    parties: Sequence[str]
    checkpoint_every: int
    checkpoint_interval: float
    clock: Callable[[], float] = time.monotonic
    _since_checkpoint: int = 0
    _last_checkpoint: float = field(default_factory=time.monotonic)
    #: messages (an event's batch of records, or one record) in this sink's hub.audit partitions
    #: not yet written (metrics: hub_audit_lag)
    lag: int = 0

    @property
    def checkpoint_age(self) -> float:
        """Seconds since this sink last signed a checkpoint (or since it started)."""
        return self.clock() - self._last_checkpoint

    async def write(self, records: list[AuditRecord]) -> int:
        """Write a batch, retrying with backoff until it lands: a record is never dropped."""
        delay = 0.2
        self.gate.trying()
        while True:
            try:
                inserted: int = await asyncio.to_thread(self.store.append, records)
            except AuditError as exc:
                _log.error(
                    "audit_write_failed", records=len(records), error=str(exc), retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.gate.succeeded()
            self._since_checkpoint += inserted
            return inserted

    def checkpoint_due(self) -> bool:
        """Every N new records, or T seconds after the last one if anything was written."""
        if self._since_checkpoint == 0:
            return False
        return (
            self._since_checkpoint >= self.checkpoint_every
            or self.clock() - self._last_checkpoint >= self.checkpoint_interval
        )

    async def checkpoint(self) -> list[wire.WireMessage]:
        """Sign a checkpoint (retrying like a write) and build one delivery per party."""
        delay = 0.2
        self.gate.trying()
        while True:
            try:
                note = await asyncio.to_thread(self.log.checkpoint)
                break
            except AuditError as exc:
                _log.error("checkpoint_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.gate.succeeded()
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()
        size = int(note.splitlines()[1])
        _log.info("checkpoint_signed", size=size)
        return self._deliveries(note, size)

    def _deliveries(self, note: str, size: int) -> list[wire.WireMessage]:
        attrs = EventAttributes(
            id=str(uuid.uuid5(_NS, f"{self.log.origin}/{size}/{note}")),
            source="/parties/hub",
            type=CHECKPOINT_TYPE,
            time=dt.datetime.now(dt.UTC),
            subject=None,
            datacontenttype=wire.JSON,
        )
        body = wire.canonical_json({"origin": self.log.origin, "size": size, "checkpoint": note})
        out = []
        for party in self.parties:
            try:
                sealed = self.envelope.seal(attrs, key=None, plaintext=body, recipient=party)
            except KeyStoreError:
                continue  # a party with no usable key: it can fetch checkpoints on request
            out.append(
                wire.WireMessage(
                    topic=f"hub.out.{party}", key=None, value=sealed.value, headers=sealed.headers
                )
            )
        return out


async def _lag(consumer: Any) -> int:
    """End offsets minus positions over the assignment: what is in hub.audit, not yet written.

    Called after the commit, so the position is the committed offset.
    """
    total = 0
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is not None:
            total += max(0, end - await consumer.position(tp))
    return total


async def run_audit_sink(
    sink: AuditSink,
    *,
    bootstrap: str,
    group_id: str,
    rebalance_timeout: float,
    session_timeout: float,
    security: KafkaSecurity | None = None,
) -> None:
    """Consume ``hub.audit`` with its own consumer group and write it to the store.

    Its own aiokafka consumer, not a faust agent: a sink stuck on a locked or unreachable
    store must not stall the fetcher that feeds the router, or the router could not even
    notice it should pause. Offsets are committed only after a batch is written.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from hub.broker import topics

    kafka = (security or KafkaSecurity()).client_kwargs()
    consumer = AIOKafkaConsumer(
        topics.AUDIT,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        rebalance_timeout_ms=int(rebalance_timeout * 1000),
        session_timeout_ms=int(session_timeout * 1000),
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=FETCH_WAIT_MS,
        **kafka,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            raw = [r.value for rs in batches.values() for r in rs]
            if raw:
                try:
                    records = [r for v in raw for r in decode_audit_message(v)]
                except ValueError:
                    # never skip an audit record: stay stuck, the gate pauses delivery
                    sink.gate.trying()
                    _log.critical("audit_record_unreadable", records=len(raw))
                    raise
                inserted = await sink.write(records)
                _log.debug("audit_written", records=len(records), inserted=inserted)
            if sink.checkpoint_due():
                messages = await sink.checkpoint()
                await asyncio.gather(
                    *[
                        producer.send_and_wait(m.topic, key=m.key, value=m.value, headers=m.headers)
                        for m in messages
                    ]
                )
            if raw:
                await consumer.commit()
            sink.lag = await _lag(consumer)
    finally:
        await consumer.stop()
        await producer.stop()
