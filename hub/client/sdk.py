"""The agency SDK: publish, consume and acknowledge, over plain aiokafka.

Agency systems need no faust and no hub internals: this module validates a payload against
its Avro schema before it leaves (so the publisher gets the error, not the quarantine),
produces CloudEvents in Kafka binary mode, and reads deliveries from the party's own topic.

```python
async with HubClient("redditch-bc.housing-repairs", bootstrap="127.0.0.1:9092") as hub:
    async for delivery in hub.deliveries(follow=True):
        update_flags(delivery.data)
        await hub.acknowledge(delivery)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
from collections.abc import AsyncGenerator, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from hub.audit.subjects import case_ref
from hub.broker import decode_guard, topics
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.lost_log import (
    LostLogWatch,
    beyond_the_end,
    default_grace,
    rewind_lost_logs,
)
from hub.broker.offsets import end_offsets
from hub.broker.security import KafkaSecurity
from hub.client.inbox import Inbox
from hub.client.precheck import local_refusal
from hub.clock import utc
from hub.envelope import wire
from hub.envelope.crypto import CryptoError
from hub.envelope.party import PartyEnvelope
from hub.envelope.sealing import OpenedRecord
from hub.errors import (
    BrokerError,
    EventRefusedError,
    EventTooLargeError,
    EventValidationError,
    UnknownPartyError,
)
from hub.keys.model import HUB_PARTY
from hub.keys.store import KeyStore
from hub.log import get_logger
from hub.models import ACK_TYPE, PARTY_ID_PATTERN, Delivery, EventAttributes
from hub.policies.model import CryptoPolicy, Protocol
from hub.schemas import SchemaRegistry, to_jsonable

__all__ = ["ACK_TYPE", "HubClient", "publish_order"]

#: an urgent-care setting viewed a MARAC flag it holds (``HubClient.record_view``)
ACCESS_TYPE = "uk.csp.marac.access.v1"
#: a responsible authority's s17A counts for one quarter (``HubClient.submit_counts``)
SUBMISSION_TYPE = "uk.csp.strategic.submission.v1"
_log = get_logger("client")


class HubClient:
    """One party's connection to the hub."""

    def __init__(
        self,
        party: str,
        *,
        bootstrap: str,
        keys: KeyStore,
        registry: SchemaRegistry | None = None,
        max_event_bytes: int = 256 * 1024,
        inbox: Path | None = None,
        group_id: str | None = None,
        crypto: CryptoPolicy | None = None,
        security: KafkaSecurity | None = None,
        protocol: Protocol | None = None,
    ) -> None:
        if not re.fullmatch(PARTY_ID_PATTERN, party):
            raise UnknownPartyError(
                f"party id: expected lowercase words like "
                f"'redditch-bc.housing-repairs', got {party!r}"
            )
        self.party = party
        self.bootstrap = bootstrap
        #: TLS and SASL for this party's Kafka principal (production: SASL_SSL, SCRAM)
        self._kafka = (security or KafkaSecurity()).client_kwargs()
        # A record aiokafka cannot decode reaches this party's consumers (``deliveries``, the
        # webhook dispatcher's) marked, and ``open_delivery`` skips it, noted, instead of the
        # consumer crashing on it for ever: ``hub.broker.decode_guard`` (process-wide).
        decode_guard.install()
        self.registry = registry or SchemaRegistry()
        self.max_event_bytes = max_event_bytes
        self.group_id = group_id or f"hub-consumer.{party}"
        self._inbox = Inbox(inbox) if inbox else None
        self._producer: AIOKafkaProducer | None = None
        self.envelope = PartyEnvelope(party, store=keys)
        #: the protocol's crypto section: which HPKE suite seals each event type to the hub
        #: (None: the hub's primary key for every type)
        self.crypto = crypto
        #: the sharing protocol, when the publisher has it: ``build`` then refuses, before
        #: anything is sent, what the hub would refuse whatever its state
        #: (``hub.client.precheck``: who may publish what, SafeLives and SOCJAG rules)
        self.protocol = protocol
        #: deliveries that failed verification or decryption (skipped, never shown)
        self.rejected: list[str] = []

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush and close connections."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    async def _get_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=False,
                linger_ms=0,
                **self._kafka,
            )
            try:
                await producer.start()
            except BaseException as exc:  # a failed or cancelled connect must not leak sockets
                with contextlib.suppress(Exception):
                    await producer.stop()
                if isinstance(exc, KafkaError):
                    raise BrokerError(
                        f"broker at {self.bootstrap}: cannot connect ({exc})"
                    ) from exc
                raise
            self._producer = producer
        return self._producer

    # -- publishing --------------------------------------------------------------------------

    def build(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        key: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        time: dt.datetime | None = None,
    ) -> wire.WireMessage:
        """Validate, encode, seal to the hub and sign an event without sending it.

        Raises:
            EventValidationError: the payload does not match the event type's schema.
            EventTooLargeError: the encoded payload is over the limit.
            EventRefusedError: with ``protocol``: the hub would refuse the event whatever its
                state (the protocol's reason, or the SafeLives or SOCJAG rule it breaks).
        """
        payload = self.registry.encode(event_type, data)
        if len(payload) > self.max_event_bytes:
            raise EventTooLargeError(
                f"{event_type}: payload is {len(payload)} bytes: expected at most "
                f"{self.max_event_bytes}"
            )
        key = key or case_ref(event_type, data)
        attrs = EventAttributes(
            id=event_id or wire.new_event_id(),
            source=wire.source_for(self.party),
            type=event_type,
            time=time or dt.datetime.now(dt.UTC),
            subject=subject or key,
            datacontenttype=wire.AVRO,
        )
        if self.protocol is not None:
            refusal = local_refusal(
                self.protocol,
                publisher=self.party,
                event_type=event_type,
                event_id=attrs.id,
                data=to_jsonable(self.registry.decode(event_type, payload)),
                now=attrs.time,
            )
            if refusal is not None:
                raise EventRefusedError(
                    f"{event_type} from {self.party}: the hub would refuse it, so it was not "
                    f"sent: {refusal}"
                )
        return self.seal(attrs, key=key.encode() if key else None, plaintext=payload)

    def seal(
        self,
        attrs: EventAttributes,
        *,
        key: bytes | None,
        plaintext: bytes,
    ) -> wire.WireMessage:
        """Seal any plaintext to the hub under these attributes and sign it.

        ``publish`` is the normal path; this is for systems that encode Avro themselves.
        """
        suite = self.crypto.suite_for(attrs.type) if self.crypto is not None else None
        sealed = self.envelope.seal(
            attrs, key=key, plaintext=plaintext, recipient=HUB_PARTY, suite=suite
        )
        return wire.WireMessage(
            topic=topics.inbound(self.party), key=key, value=sealed.value, headers=sealed.headers
        )

    async def publish(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        key: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Validate, produce to ``hub.in.<party>`` and wait for the broker; returns the id.

        Raises:
            EventValidationError: the payload does not match the event type's schema.
            EventTooLargeError: the encoded payload is over the limit.
            EventRefusedError: with ``protocol``: the hub would refuse it (``build``).
            BrokerError: the broker did not accept the write.
        """
        message = self.build(event_type, data, key=key, subject=subject, event_id=event_id)
        await self.send(message)
        return dict(message.headers)["ce_id"].decode()

    async def send(self, message: wire.WireMessage) -> str:
        """Produce a prepared record, wait until the broker has it; returns its origin.

        The origin (``topic/partition/offset``) is how the hub's audit records name the
        record, so a caller can find the decision about this very record.
        """
        producer = await self._get_producer()
        try:
            meta = await producer.send_and_wait(
                message.topic, key=message.key, value=message.value, headers=message.headers
            )
        except KafkaError as exc:
            raise BrokerError(
                f"broker at {self.bootstrap}: write to {message.topic} failed ({exc})"
            ) from exc
        return f"{meta.topic}/{meta.partition}/{meta.offset}"

    async def acknowledge(
        self, delivery: Delivery, *, status: str = "received", note: str | None = None
    ) -> str:
        """Send the receipt the hub audits as ``acknowledged``."""
        return await self.publish(
            ACK_TYPE,
            {
                "acknowledged_event_id": delivery.id,
                "acknowledged_type": delivery.type,
                "received_at": dt.datetime.now(dt.UTC).isoformat(),
                "status": status,
                "note": note,
            },
            key=delivery.key or delivery.id,
            subject=delivery.subject,
        )

    async def record_view(
        self,
        delivery: Delivery,
        *,
        setting: str,
        viewed_by: str | None = None,
        viewed_at: dt.datetime | None = None,
    ) -> str:
        """Say that a MARAC flag this party holds was viewed (NHS CP-IS access notification).

        For urgent-care settings: the hub tells the MARAC coordinator which setting viewed
        the flag and when (``uk.csp.marac.access.v1``). ``setting`` names the unit where it was
        viewed, ``viewed_by`` a role or staff reference, never the patient.
        """
        return await self.publish(
            ACCESS_TYPE,
            {
                "case_ref": delivery.data["case_ref"],
                "subject_ref": delivery.data.get("subject_ref"),
                "viewed_event_id": delivery.id,
                "viewed_at": (viewed_at or dt.datetime.now(dt.UTC)).isoformat(),
                "setting": setting,
                "viewed_by": viewed_by,
            },
            key=delivery.key or str(delivery.data["case_ref"]),
            subject=delivery.subject,
        )

    async def submit_counts(
        self,
        *,
        period: str,
        category: str,
        counts: Mapping[str, int],
        submission_id: str | None = None,
    ) -> str:
        """Submit this party's s17A depersonalised counts for one quarter and category.

        Crime and Disorder Act 1998 s17A: ``counts`` maps each general postcode (the outward
        code only, ``B97``) or ONS ward code to a count; nothing personal can be sent (the
        schema refuses a full postcode, a name or free text, before anything leaves). A
        later submission for the same period and category replaces this one (a correction).
        Returns the event id.
        """
        reference = submission_id or f"{self.party[:40]}-{period}-{category}".replace("_", "-")
        return await self.publish(
            SUBMISSION_TYPE,
            {
                "submission_id": reference[:64],
                "submitter": self.party,
                "period": period,
                "category": category,
                "counts": [{"area": area, "count": n} for area, n in counts.items()],
            },
            key=f"S17A-{period}-{self.party}",
        )

    # -- consuming ---------------------------------------------------------------------------

    async def deliveries(
        self,
        *,
        follow: bool = False,
        poll_timeout: float = 1.0,
        ordered: bool = False,
    ) -> AsyncGenerator[Delivery, None]:
        """Deliveries on ``hub.out.<party>`` not yet handled by this party's group.

        Without ``follow`` it stops at the end of what is there now. Each delivery's offset is
        committed once the caller asks for the next one, so a crash re-delivers at most the
        one in hand, and the inbox (when given) skips ids already handled.

        ``ordered`` yields what is waiting in publish order per case (``publish_order``):
        the partitions of ``hub.out.<party>`` are read in turn and the router's workers
        deliver each publisher's topic on its own, so arrival order is not the order in
        which a case's events were published. Everything waiting now is read first, then
        (with ``follow``) each later fetch; offsets are committed once a whole read has
        been handled, and the inbox skips what a crash in between re-delivers.

        A committed offset past the end of a partition's log (the broker lost its records:
        ``hub.broker.lost_log``) is read from the start after the watch's grace period, as
        Kafka's ``OFFSET_OUT_OF_RANGE`` would do; on the embedded broker the consumer waited
        there for good, and a read without ``follow`` stopped at once, having yielded
        nothing. Deliveries from before may come again: the inbox skips the ids it holds.
        """
        topic = topics.outbound(self.party)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            **self._kafka,
        )
        try:
            await consumer.start()
        except BaseException as exc:  # a failed or cancelled connect must not leak sockets
            with contextlib.suppress(Exception):
                await consumer.stop()
            if isinstance(exc, KafkaError):
                raise BrokerError(f"broker at {self.bootstrap}: cannot connect ({exc})") from exc
            raise
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return
            consumer.assign(tps)
            # not consumer.end_offsets: the embedded broker's is a batch short
            # (hub.broker.offsets); this moves the positions, so it comes before the seeks
            ends = await end_offsets(consumer, tps)
            for tp in tps:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
            watch = LostLogWatch(grace=default_grace())  # HUB_LOST_LOG_GRACE, else none
            if ordered:
                async for next_one in self._in_order(
                    consumer, tps, ends, follow, poll_timeout, watch
                ):
                    yield next_one
                return
            while True:
                rewind_lost_logs(consumer, watch, log=_log)
                batches = await consumer.getmany(*tps, timeout_ms=int(poll_timeout * 1000))
                for tp, records in batches.items():
                    for record in records:
                        delivery = self._open_delivery(record)
                        if delivery is not None and not self._already(delivery):
                            yield delivery
                            self._mark(delivery)
                        await consumer.commit({tp: record.offset + 1})
                if not follow and await _at_the_end(consumer, tps, ends, watch):
                    return
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.stop())

    async def _in_order(
        self,
        consumer: AIOKafkaConsumer,
        tps: list[TopicPartition],
        ends: dict[TopicPartition, int],
        follow: bool,
        poll_timeout: float,
        watch: LostLogWatch,
    ) -> AsyncGenerator[Delivery, None]:
        """``deliveries(ordered=True)``: whole reads, each in publish order per case."""
        held: list[Any] = []
        backlog = True  # everything up to the end offsets read at the start, as one read
        while True:
            rewind_lost_logs(consumer, watch, log=_log)
            batches = await consumer.getmany(*tps, timeout_ms=int(poll_timeout * 1000))
            held += [record for records in batches.values() for record in records]
            caught_up = True
            if backlog:
                caught_up = await _at_the_end(consumer, tps, ends, watch)
            if caught_up and held:
                opened = [d for d in map(self._open_delivery, held) if d is not None]
                for delivery in publish_order([d for d in opened if not self._already(d)]):
                    yield delivery
                    self._mark(delivery)
                last: dict[TopicPartition, int] = {}
                for record in held:
                    tp = TopicPartition(record.topic, record.partition)
                    last[tp] = max(last.get(tp, -1), record.offset)
                await consumer.commit({tp: offset + 1 for tp, offset in last.items()})
                held = []
            if caught_up:
                backlog = False
                if not follow:
                    return

    def open_delivery(self, record: Any) -> Delivery | None:
        """Verify and decrypt one raw ``hub.out.<party>`` record (None: failed, noted).

        For agents that run their own consumer loop (the webhook dispatcher).
        """
        return self._open_delivery(record)

    def _open_delivery(self, record: Any) -> Delivery | None:
        """Verify the hub's signature and decrypt; a record that fails is skipped, noted."""
        try:
            headers = wire.decode_headers(record.headers)
            opened = self.envelope.open(
                headers, key=record.key, value=record.value or b"", expected_signer=HUB_PARTY
            )
            return _delivery_from(self.party, record, opened)
        except (wire.HeaderError, CryptoError, EventValidationError) as exc:
            where = f"{record.topic}/{record.partition}/{record.offset}"
            self.rejected.append(where)
            _log.warning("delivery_rejected", origin=where, reason=getattr(exc, "reason", ""))
            return None

    def _already(self, delivery: Delivery) -> bool:
        return self._inbox is not None and self._inbox.seen(delivery.id, source=delivery.source)

    def _mark(self, delivery: Delivery) -> None:
        if self._inbox is not None:
            self._inbox.mark(delivery.id, source=delivery.source)


async def _at_the_end(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    watch: LostLogWatch,
) -> bool:
    """Whether every partition was read up to ``ends``, and none is past its log's end.

    With the watch on, a position past the log's end (``hub.broker.lost_log``) is not the
    end: the records below it are read once the watch has sought it back to the start.
    (Off, on Kafka, the fetch from there is answered ``OFFSET_OUT_OF_RANGE`` and the
    position reset to the earliest offset.)
    """
    positions = {tp: await consumer.position(tp) for tp in tps}
    reached = all(positions[tp] >= ends[tp] for tp in tps)
    return reached and not (watch.on and beyond_the_end(consumer))


def publish_order(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Deliveries grouped by case, each case's events in the order they were published.

    A case is the Kafka key (the case reference, ``hub.audit.subjects.case_ref``); cases
    come in the order of their first event, and a delivery without a key (a hub notice)
    stands alone. Publish order is the event's ``time`` (set by its publisher); equal times
    keep the order of arrival.
    """
    cases: dict[str, list[tuple[int, Delivery]]] = {}
    for arrival, delivery in enumerate(deliveries):
        case = delivery.key if delivery.key else f"\x00{arrival}"
        cases.setdefault(case, []).append((arrival, delivery))
    groups = [
        sorted(group, key=lambda item: (utc(item[1].time), item[0])) for group in cases.values()
    ]
    groups.sort(key=lambda group: (utc(group[0][1].time), group[0][0]))
    return [delivery for group in groups for _, delivery in group]


def _delivery_from(party: str, record: Any, opened: OpenedRecord) -> Delivery:
    """A delivery from a verified, decrypted record."""
    headers = opened.headers
    attrs = wire.attributes_from_headers(headers)
    try:
        data = json.loads(opened.plaintext or b"{}")
    except ValueError as exc:
        raise CryptoError("delivery plaintext is not JSON", "bad_envelope") from exc
    return Delivery(
        id=attrs.id,
        type=attrs.type,
        source=attrs.source,
        time=attrs.time,
        subject=attrs.subject,
        recipient=headers.get("ce_hubrecipient", party),
        rule=headers.get("ce_hubrule") or None,
        protocol_hash=headers.get("ce_hubprotocol"),
        data=data if isinstance(data, dict) else {"value": data},
        key=record.key.decode() if record.key else None,
    )
