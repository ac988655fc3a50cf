"""The audit sink: write authenticated audit batches and sign checkpoints.

X-Road's rule, applied here: if the audit store cannot be written for longer than
``HUB_AUDIT_OUTAGE_LIMIT`` seconds, the routers stop delivering and events wait in Kafka,
rather than share without a record. The routers decide that themselves by watching the
store (``hub.agents.audit_watch``), whatever stopped the sink; the sink only keeps retrying
the same batch with backoff, so when the store comes back everything is written and the
routers resume by themselves; nothing is lost and nothing is dropped.

Checkpoints (C2SP tlog-checkpoint, signed note) are signed every ``HUB_CHECKPOINT_EVERY``
records or ``HUB_CHECKPOINT_INTERVAL`` seconds and delivered to every party, so no operator
can rewrite history without every agency being able to tell. The records counted are the
store's, not only the sink's own: the console and the CLI append ``consulted`` records (and
IG actions) to the store directly, so the sink looks at the store's size every
``TAIL_POLL`` seconds, and a record nothing commits to yet is signed within the interval
whether or not any traffic follows it (deleting the newest consultation must not go unseen).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, TypeAdapter

from hub.audit.log import AuditLog
from hub.audit.store import AuditStore
from hub.audit.stream import AuditStreamError, verify_message
from hub.broker import topics
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.lost_log import LostLogWatch, rewind_lost_logs
from hub.broker.security import KafkaSecurity
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.errors import AuditError, KeyStoreError
from hub.log import get_logger
from hub.models import (
    AuditBatch,
    AuditDecision,
    AuditRecord,
    EventAttributes,
    consumed_digest,
    record_id_for,
)
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.federation.proofs import PeerProofs

__all__ = [
    "CHECKPOINT_TYPE",
    "AuditSink",
    "Refused",
    "decode_audit_message",
    "read_messages",
    "run_audit_sink",
    "serve_audit_sink",
    "sink_factory",
]

CHECKPOINT_TYPE = "uk.csp.audit.checkpoint.v1"
#: seconds between the sink's looks at the store for records others appended
TAIL_POLL = 1.0
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
class AuditSink:
    """Writes batches to the store and signs checkpoints on schedule."""

    store: AuditStore
    log: AuditLog
    envelope: PartyEnvelope
    parties: Sequence[str]
    checkpoint_every: int
    checkpoint_interval: float
    clock: Callable[[], float] = time.monotonic
    tail_poll: float = TAIL_POLL
    _since_checkpoint: int = 0
    _last_checkpoint: float = field(default_factory=time.monotonic)
    #: the size of the newest checkpoint signed (read from the store once), and how many
    #: records the store held past it when last looked at (other writers' included)
    _signed_size: int | None = None
    _unsigned: int = 0
    _polled: float | None = None
    #: messages (an event's batch of records, or one record) in this sink's hub.audit partitions
    #: not yet written (metrics: hub_audit_lag)
    lag: int = 0
    #: hand-overs to prove to peer hubs once a checkpoint covers them (issue 20), and how to
    #: open a full log to prove them with (``hub.federation.proofs``)
    proofs: PeerProofs | None = None
    proof_log: Callable[[], tuple[AuditLog, AuditStore]] | None = None

    @property
    def checkpoint_age(self) -> float:
        """Seconds since this sink last signed a checkpoint (or since it started)."""
        return self.clock() - self._last_checkpoint

    async def write(self, records: list[AuditRecord]) -> int:
        """Write a batch, retrying with backoff until it lands: a record is never dropped."""
        delay = 0.2
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
            self._since_checkpoint += inserted
            if self.proofs is not None:
                self.proofs.note(records)
            return inserted

    @property
    def unsigned(self) -> int:
        """Records known to be in the store and under no checkpoint yet."""
        return max(self._since_checkpoint, self._unsigned)

    async def poll_tail(self) -> None:
        """Every ``tail_poll`` seconds: how many stored records no checkpoint covers yet.

        Counts what other writers appended (the console's and the CLI's ``consulted``
        records, IG actions, a prune) as well as the sink's own writes. A store that cannot
        be read now is looked at again next time (writes have their own retries).
        """
        now = self.clock()
        if self._polled is not None and now - self._polled < self.tail_poll:
            return
        self._polled = now
        try:
            self._unsigned = await asyncio.to_thread(self._tail)
        except AuditError as exc:
            _log.warning("checkpoint_tail_unread", error=str(exc))

    def _tail(self) -> int:
        size = self.store.size()
        if self._signed_size is None:
            stored = self.store.newest_checkpoint()
            self._signed_size = stored[0] if stored else 0
        return max(0, size - self._signed_size)

    def checkpoint_due(self) -> bool:
        """Every N new records, or T seconds after the last one if any record is unsigned."""
        if self.unsigned == 0:
            return False
        return (
            self._since_checkpoint >= self.checkpoint_every
            or self.clock() - self._last_checkpoint >= self.checkpoint_interval
        )

    async def checkpoint(self) -> list[wire.WireMessage]:
        """Sign a checkpoint (retrying like a write) and build one delivery per party."""
        delay = 0.2
        while True:
            try:
                note = await asyncio.to_thread(self.log.checkpoint)
                break
            except AuditError as exc:
                _log.error("checkpoint_failed", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()
        size = int(note.splitlines()[1])
        self._signed_size, self._unsigned = size, 0
        _log.info("checkpoint_signed", size=size)
        return self._deliveries(note, size) + await self._peer_proofs()

    async def _peer_proofs(self) -> list[wire.WireMessage]:
        """Each pending hand-over's proof, as the hub's own event for the router to route.

        Not to ``hub.out.<peer>``: a proof carries one of this hub's audit records to another
        partnership, so the router decides it under the protocol's proofs-to-peer rule and
        audits the delivery before producing it (``hub.federation.proofs.proof_message``).
        """
        if self.proofs is None or self.proof_log is None or not self.proofs.pending:
            return []
        from hub.federation.proofs import proof_message
        from hub.schemas import SchemaRegistry

        try:
            bodies = await asyncio.to_thread(self.proofs.bodies, self.proof_log)
        except AuditError as exc:  # the proofs are lost; hub audit proof --export still works
            _log.error("peer_proofs_failed", error=str(exc))
            return []
        registry = SchemaRegistry()
        out = []
        for peer, event_id, body in bodies:
            try:
                message = proof_message(
                    self.envelope,
                    peer=peer,
                    event_id=event_id,
                    body=body,
                    registry=registry,
                    suite=self.proofs.suite,
                )
            except KeyStoreError as exc:
                _log.warning("peer_proof_unsealed", peer=peer, event_id=event_id, error=str(exc))
                continue
            out.append(message)
            _log.info("peer_proof", peer=peer, event_id=event_id, record=body["audit_record"])
        return out

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


#: a refused hub.audit message is copied whole to hub.quarantine up to this size; above it,
#: its first bytes and the SHA-256 of the whole (the producer's request limit is 1 MiB)
QUARANTINE_COPY_BYTES = 512 * 1024


@dataclass
class Refused:
    """A ``hub.audit`` message the sink will not store: why, and where it was."""

    origin: str
    reason: str
    detail: str
    writer: str | None
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def quarantine_copy(self) -> wire.WireMessage:
        """The message for ``hub.quarantine``: whole, or a digest and a truncated copy."""
        headers = [(k, v) for k, v in self.headers]
        value = self.value
        if len(value) > QUARANTINE_COPY_BYTES:
            headers += [
                ("hub_truncated", str(len(value)).encode()),
                ("hub_sha256", hashlib.sha256(value).hexdigest().encode()),
            ]
            value = value[:QUARANTINE_COPY_BYTES]
        headers += [
            ("hub_reason", self.reason.encode()),
            ("hub_detail", self.detail.encode()),
            ("hub_origin", self.origin.encode()),
        ]
        return wire.WireMessage(topic=topics.QUARANTINE, key=self.key, value=value, headers=headers)

    def audit_record(self, *, now: dt.datetime) -> AuditRecord:
        """The sink's own record of the refusal: what the IG role is alerted to."""
        event_id = f"audit:{self.origin}"
        # the message's digest too: two messages at one origin (offsets reused after the
        # embedded broker restarted empty) each get a record (``consumed_digest``)
        digest = consumed_digest(self.key, self.value, self.headers)
        return AuditRecord(
            record_id=record_id_for(f"{event_id}#{digest}", None, f"rejected/{self.reason}"),
            time=now,
            event_id=event_id,
            decision=AuditDecision.REJECTED,
            reason=f"{self.reason}: {self.detail} (writer {self.writer or 'unknown'}; "
            f"sha256 {hashlib.sha256(self.value).hexdigest()})",
            origin=self.origin,
        )


def _header_text(name: str | bytes) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


def read_messages(raw: Sequence[Any], *, secret: bytes) -> tuple[list[AuditRecord], list[Refused]]:
    """Verify and decode fetched ``hub.audit`` records: what to store, and what to refuse.

    A message without a valid MAC (``hub.audit.stream``) is refused as
    ``forged_audit_message``; one with a valid MAC that does not decode (a writer's bug) as
    ``unreadable_audit_message``. Neither is stored, neither stops the sink: the router's
    watch on the store (``hub.agents.audit_watch``) pauses delivery if a real batch is missing.
    """
    records: list[AuditRecord] = []
    refused: list[Refused] = []
    for r in raw:
        origin = f"{r.topic}/{r.partition}@{r.offset}"
        headers = [(_header_text(k), v or b"") for k, v in r.headers or ()]
        value = r.value or b""
        writer: str | None = None
        try:
            writer = verify_message(secret, key=r.key, value=value, headers=headers)
            records.extend(decode_audit_message(value))
        except AuditStreamError as exc:
            refused.append(
                Refused(origin, "forged_audit_message", str(exc), writer, r.key, value, headers)
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            detail = f"not an audit batch or record ({type(exc).__name__})"
            refused.append(
                Refused(origin, "unreadable_audit_message", detail, writer, r.key, value, headers)
            )
    return records, refused


#: records the sink writes in one transaction at most
_MAX_RECORDS = 5000


async def _gather(consumer: Any, *, linger: float, max_records: int) -> list[Any]:
    """What ``hub.audit`` has, gathered for up to ``linger`` seconds after the first record.

    One store transaction (one fsync with ``synchronous=FULL``), one offset commit and one
    checkpoint check per gathering instead of per fetch: under load a fetch returns a few
    messages every few milliseconds, and writing each alone cost the sink more than the
    records. Delivery does not wait for this (the routers deliver once the broker has the
    audit message); only the store lags by up to ``linger``, far inside the routers' limit.
    """
    batches = await consumer.getmany(timeout_ms=200, max_records=max_records)
    raw = [r for rs in batches.values() for r in rs]
    deadline = time.monotonic() + linger
    while raw and len(raw) < max_records and (left := deadline - time.monotonic()) > 0:
        more = await consumer.getmany(
            timeout_ms=max(1, int(left * 1000)), max_records=max_records - len(raw)
        )
        raw += [r for rs in more.values() for r in rs]
    return raw


async def run_audit_sink(
    sink: AuditSink,
    *,
    bootstrap: str,
    group_id: str,
    rebalance_timeout: float,
    session_timeout: float,
    secret: bytes,
    security: KafkaSecurity | None = None,
    on_refused: Callable[[Refused], None] | None = None,
    linger: float = 0.1,
    lost_log_grace: float | None = None,
) -> None:
    """Consume ``hub.audit`` with its own consumer group and write it to the store.

    Its own aiokafka consumer, not a faust agent: a sink stuck on a locked or unreachable
    store must not stall the fetcher that feeds the router, or the router could not even
    notice it should pause. Everything one fetch returned is written in one append (one
    transaction); offsets are committed only after it is written. A message that fails its
    MAC or does not decode is copied to ``hub.quarantine`` and its refusal audited before the
    offset passes it; it is never stored. ``lost_log_grace``: ``HubSettings.lost_log_grace``
    (None: no watch; ``hub up`` sets it with its embedded broker, ``hub.broker.lost_log``).
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from hub.broker import decode_guard

    # a record aiokafka cannot decode (a header name not UTF-8, a corrupt batch) reaches
    # read_messages marked, fails its MAC and is refused, instead of killing the fetcher
    decode_guard.install()
    kafka = (security or KafkaSecurity()).client_kwargs()
    # before the clients: a bad HUB_LOST_LOG_GRACE (ConfigError) must not leave them open, one
    # pair (and one member of the sink's group) more at each of serve_audit_sink's retries
    watch = LostLogWatch(grace=lost_log_grace)
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
            # hub.broker.lost_log: a partition of hub.audit past its log's end is read from
            # its start (the store keeps each record once)
            rewind_lost_logs(consumer, watch, log=_log)
            raw = await _gather(consumer, linger=linger, max_records=_MAX_RECORDS)
            if raw:
                records, refused = read_messages(raw, secret=secret)
                if refused:
                    now = dt.datetime.now(dt.UTC)
                    copies = [refusal.quarantine_copy() for refusal in refused]
                    await asyncio.gather(
                        *[
                            producer.send_and_wait(
                                m.topic, key=m.key, value=m.value, headers=m.headers
                            )
                            for m in copies
                        ]
                    )
                    records += [refusal.audit_record(now=now) for refusal in refused]
                    for refusal in refused:
                        # the IG role's alert: the log line, the metric, and the record above
                        _log.critical(
                            "audit_message_refused",
                            reason=refusal.reason,
                            origin=refusal.origin,
                            writer=refusal.writer,
                        )
                        if on_refused is not None:
                            on_refused(refusal)
                inserted = await sink.write(records)
                _log.debug("audit_written", records=len(records), inserted=inserted)
            await sink.poll_tail()
            if sink.checkpoint_due():
                messages = await sink.checkpoint()
                await asyncio.gather(
                    *[
                        producer.send_and_wait(m.topic, key=m.key, value=m.value, headers=m.headers)
                        for m in messages
                    ]
                )
            if raw:
                try:
                    await consumer.commit()
                except KafkaError as exc:
                    # the group moved on (a rebalance, a broker that restarted): whatever the
                    # next owner reads again is stored once, by record id
                    _log.warning("audit_commit_failed", error=type(exc).__name__)
            sink.lag = await _lag(consumer)
    finally:
        await consumer.stop()
        await producer.stop()


async def serve_audit_sink(
    make_sink: Callable[[], AuditSink],
    *,
    bootstrap: str,
    group_id: str,
    settings: HubSettings,
    secret: bytes,
    on_refused: Callable[[Refused], None] | None = None,
) -> None:
    """Run the sink until cancelled; if it fails, start it again with backoff.

    Whoever runs it (a task in a worker, or ``hub.agents.sink_worker`` on its own) never dies
    with it: the routers' watch on the store (``hub.agents.audit_watch``) pauses delivery
    while no sink writes, whatever stopped it, and resends what the store never got.
    """
    delay = 0.5
    while True:
        sink = make_sink()
        try:
            await run_audit_sink(
                sink,
                bootstrap=bootstrap,
                group_id=group_id,
                rebalance_timeout=settings.rebalance_timeout,
                session_timeout=settings.session_timeout,
                secret=secret,
                security=settings.kafka_security,
                on_refused=on_refused,
                lost_log_grace=settings.lost_log_grace,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.error("audit_sink_restarting", error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
        finally:
            sink.store.close()


def sink_factory(
    settings: HubSettings,
    *,
    parties: Sequence[str],
    envelope: PartyEnvelope,
    on_sink: Callable[[AuditSink], None] | None = None,
) -> Callable[[], AuditSink]:
    """Make a sink on a fresh store connection each time ``serve_audit_sink`` (re)starts."""
    from hub.audit.checkpoint import log_signer
    from hub.audit.store import open_store
    from hub.federation.proofs import PeerProofs
    from hub.policies.loader import load_protocol

    proofs_for = PeerProofs.of(load_protocol(settings.protocol))

    def make() -> AuditSink:
        store = open_store(settings)
        signer = log_signer(settings, create=True)
        sink = AuditSink(
            store=store,
            log=AuditLog(store, signer=signer, heads_only=True),
            envelope=envelope,
            parties=parties,
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval=settings.checkpoint_interval,
        )
        if proofs_for is not None:
            # A full log, made at the first hand-over to prove and kept: it reads the whole
            # tree once, then only what was appended, so a checkpoint with a hand-over does not
            # stall the sink on a long log (a hub with no hand-over never holds a whole tree;
            # one that has them holds the leaf hashes in memory, as `hub audit proof` does).
            sink.proofs = PeerProofs.of(load_protocol(settings.protocol))
            full: list[AuditLog] = []

            def proof_log() -> tuple[AuditLog, AuditStore]:
                if not full:
                    full.append(AuditLog(store, signer=signer))
                return full[0], store

            sink.proof_log = proof_log
        if on_sink is not None:
            on_sink(sink)
        return sink

    return make
