"""Reconcile the broker with the audit store: every delivery has its ``delivered`` record.

The IG officer's proof of the hub's central promise (no disclosure without its audit
record), read from the two real places: every record on every ``hub.out.<party>`` topic,
read raw from the beginning to the end offsets (its ``ce_id``, ``ce_source`` and
``ce_hubrecipient`` headers; no key is needed, the payload stays sealed), and the audit
store's ``delivered`` records of those events.

- *unaudited*: a delivery with no ``delivered`` record for its event and recipient (from the
  same publisher, when both name one). The number that must be zero.
- *duplicated*: the same delivery on a topic more than once. At-least-once processing
  redelivers after a crash; recipients drop repeats by event id. Reported, not a failure.
- *unidentified*: a record on a delivery topic that is neither a delivery nor one of the
  hub's own notices (no ``ce_id`` or ``ce_hubrecipient``, or headers the Kafka client could
  not decode). The hub never writes one; nothing can show it was audited, so it fails the
  check like an unaudited delivery.

``hub audit reconcile`` prints this; the fault probes (``tests/faults.py``) count with it.
The pure parts (``reconcile``) take what was read; ``read_outbound`` is the one reader.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.audit.store import AuditStore
from hub.broker import topics
from hub.broker.security import KafkaSecurity
from hub.errors import BrokerError
from hub.models import AuditDecision, AuditRecord

__all__ = [
    "HUB_SOURCE",
    "Duplicate",
    "Outbound",
    "Reconciliation",
    "SeenDelivery",
    "Unidentified",
    "classify",
    "delivered_records",
    "read_outbound",
    "reconcile",
    "reconcile_with_store",
]

#: the hub's own notices to a party (rejections, suspensions, checkpoints) are not deliveries;
#: the hub's own events routed under a rule (workflow alerts, withdrawals, proofs to a peer:
#: published on hub.in.hub) are, and carry the rule (``ce_hubrule``) as every delivery does
HUB_SOURCE = "/parties/hub"
_PARTY_SOURCE = "/parties/"
#: how long the reader waits for a partition behind its end offset to return anything
_STALL_SECONDS = 30.0
#: an event is delivered to a handful of recipients; this only bounds a pathological store
_RECORDS_PER_EVENT = 100_000


@dataclass(frozen=True)
class SeenDelivery:
    """One delivery record read from a ``hub.out.<party>`` topic."""

    event_id: str
    recipient: str
    #: the publishing party (``ce_source`` without ``/parties/``); ``None`` when not known
    publisher: str | None = None
    #: ``<topic>/<partition>@<offset>``
    origin: str | None = None

    @property
    def key(self) -> tuple[str | None, str, str]:
        """The delivery's identity: publisher, event id (CloudEvents source + id), recipient."""
        return (self.publisher, self.event_id, self.recipient)

    def to_json(self) -> dict[str, Any]:
        """As printed by ``hub audit reconcile --json``."""
        return {
            "event_id": self.event_id,
            "recipient": self.recipient,
            "publisher": self.publisher,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class Unidentified:
    """A record on a delivery topic that names no delivery."""

    origin: str
    why: str

    def to_json(self) -> dict[str, Any]:
        """As printed by ``hub audit reconcile --json``."""
        return {"origin": self.origin, "why": self.why}


@dataclass(frozen=True)
class Outbound:
    """What the delivery topics held when they were read."""

    topics: list[str]
    deliveries: list[SeenDelivery]
    #: the hub's own notices, skipped
    notices: int = 0
    unidentified: list[Unidentified] = field(default_factory=list)


@dataclass(frozen=True)
class Duplicate:
    """A delivery found on its topic more than once."""

    delivery: SeenDelivery
    copies: int

    def to_json(self) -> dict[str, Any]:
        """As printed by ``hub audit reconcile --json``."""
        return {**self.delivery.to_json(), "copies": self.copies}


@dataclass(frozen=True)
class Reconciliation:
    """Deliveries read against ``delivered`` records."""

    topics: list[str]
    #: delivery records read, repeats included
    read: int
    #: distinct deliveries (publisher, event, recipient)
    deliveries: int
    #: distinct deliveries with a ``delivered`` record
    audited: int
    #: distinct deliveries without one (the first copy read of each)
    unaudited: list[SeenDelivery]
    duplicated: list[Duplicate]
    #: ``delivered`` records beyond one per delivery (the store keeps one per record id)
    duplicate_records: int
    notices: int
    unidentified: list[Unidentified]

    @property
    def ok(self) -> bool:
        """Every delivery on the broker has its audit record (and every record is one)."""
        return not self.unaudited and not self.unidentified

    @property
    def redelivered(self) -> int:
        """Copies read beyond the first of each delivery."""
        return sum(d.copies - 1 for d in self.duplicated)

    def to_json(self) -> dict[str, Any]:
        """The document ``hub audit reconcile --json`` prints."""
        return {
            "ok": self.ok,
            "topics": self.topics,
            "read": self.read,
            "deliveries": self.deliveries,
            "audited": self.audited,
            "unaudited": len(self.unaudited),
            "duplicated": len(self.duplicated),
            "redelivered": self.redelivered,
            "duplicate_records": self.duplicate_records,
            "notices": self.notices,
            "unidentified": len(self.unidentified),
            "unaudited_deliveries": [d.to_json() for d in self.unaudited],
            "duplicated_deliveries": [d.to_json() for d in self.duplicated],
            "unidentified_records": [u.to_json() for u in self.unidentified],
        }


def reconcile(outbound: Outbound, *, delivered: Iterable[AuditRecord]) -> Reconciliation:
    """Match every delivery read with the ``delivered`` records of its event.

    A delivery is audited by a ``delivered`` record with its event id and recipient whose
    publisher is the delivery's, when both name one (an event is its source and id).
    """
    publishers: defaultdict[tuple[str, str], set[str | None]] = defaultdict(set)
    records: Counter[tuple[str | None, str, str]] = Counter()
    for record in delivered:
        if record.decision is not AuditDecision.DELIVERED or record.recipient is None:
            continue
        publishers[(record.event_id, record.recipient)].add(record.publisher)
        records[(record.publisher, record.event_id, record.recipient)] += 1
    copies: Counter[tuple[str | None, str, str]] = Counter()
    first: dict[tuple[str | None, str, str], SeenDelivery] = {}
    for delivery in outbound.deliveries:
        copies[delivery.key] += 1
        first.setdefault(delivery.key, delivery)

    def audited(d: SeenDelivery) -> bool:
        found = publishers.get((d.event_id, d.recipient), set())
        return bool(found) and (d.publisher is None or None in found or d.publisher in found)

    unaudited = [d for d in first.values() if not audited(d)]
    return Reconciliation(
        topics=outbound.topics,
        read=len(outbound.deliveries),
        deliveries=len(first),
        audited=len(first) - len(unaudited),
        unaudited=unaudited,
        duplicated=[Duplicate(first[k], n) for k, n in copies.items() if n > 1],
        duplicate_records=sum(n - 1 for n in records.values() if n > 1),
        notices=outbound.notices,
        unidentified=outbound.unidentified,
    )


def delivered_records(store: AuditStore, *, event_ids: Iterable[str]) -> list[AuditRecord]:
    """The ``delivered`` records of these events: one indexed query per event.

    Costs what is on the broker (its events), not the size of the store.
    """
    found: list[AuditRecord] = []
    for event_id in sorted(set(event_ids)):
        found += store.query(
            event_id=event_id, decision=AuditDecision.DELIVERED, limit=_RECORDS_PER_EVENT
        )
    return found


def reconcile_with_store(
    store: AuditStore,
    outbound: Outbound,
    *,
    wait: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Reconciliation:
    """``reconcile`` against the store, asking again for up to ``wait`` seconds.

    A delivery may be on its topic while its audit records are on ``hub.audit``, not yet in
    the store (the router delivers once the broker holds them): the sink writes them within
    moments. Only the events still unaudited are asked for again.
    """
    records = delivered_records(store, event_ids=(d.event_id for d in outbound.deliveries))
    result = reconcile(outbound, delivered=records)
    deadline = clock() + wait
    while result.unaudited and clock() < deadline:
        sleep(min(0.5, max(0.0, deadline - clock())))
        records += delivered_records(store, event_ids=(d.event_id for d in result.unaudited))
        result = reconcile(outbound, delivered=records)
    return result


def _origin(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def classify(record: Any) -> SeenDelivery | Unidentified | None:
    """What a raw ``hub.out`` record is: a delivery, not one (``Unidentified``), or a notice.

    Returns ``None`` for the hub's own notices.
    """
    from hub.broker.decode_guard import UNDECODABLE

    headers: dict[str, str] = {}
    for name, value in record.headers or ():
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        headers.setdefault(text, (value or b"").decode("utf-8", "replace"))
    if UNDECODABLE in headers:
        return Unidentified(_origin(record), f"undecodable record: {headers[UNDECODABLE]}")
    source = headers.get("ce_source")
    if source == HUB_SOURCE and "ce_hubrule" not in headers:
        return None  # a notice: sealed to the party, never a disclosure under a rule
    event_id, recipient = headers.get("ce_id"), headers.get("ce_hubrecipient")
    if not event_id or not recipient:
        missing = [n for n, v in (("ce_id", event_id), ("ce_hubrecipient", recipient)) if not v]
        return Unidentified(_origin(record), f"no {' or '.join(missing)} header")
    publisher = source.removeprefix(_PARTY_SOURCE) if source else None
    return SeenDelivery(event_id, recipient, publisher, _origin(record))


async def read_outbound(
    bootstrap: str,
    *,
    parties: Iterable[str] | None = None,
    security: KafkaSecurity | None = None,
    stall_seconds: float = _STALL_SECONDS,
) -> Outbound:
    """Every record on the delivery topics, from the beginning to the end offsets of now.

    Args:
        bootstrap: the broker.
        parties: read these parties' ``hub.out.<party>`` topics; ``None`` reads every
            ``hub.out.*`` topic on the broker (a party since removed from the protocol too).
        security: the hub's Kafka credentials.
        stall_seconds: give up when a partition behind its end offset returns nothing for
            this long.

    Raises:
        BrokerError: the broker cannot be reached, or a partition stalls.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    from hub.broker import decode_guard
    from hub.broker.offsets import end_offsets

    decode_guard.install()  # a record aiokafka cannot decode is reported, not a crash
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        **(security or KafkaSecurity()).client_kwargs(),
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the broker at {bootstrap}: {exc}") from exc
    try:
        names = await consumer.topics()
        if parties is None:
            wanted = sorted(n for n in names if n.startswith(topics.OUTBOUND_PREFIX))
        else:
            wanted = sorted({topics.outbound(p) for p in parties} & names)
        tps = [
            TopicPartition(t, p)
            for t in wanted
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            return Outbound(topics=wanted, deliveries=[])
        consumer.assign(tps)
        # not consumer.end_offsets: the embedded broker's is a batch short (hub.broker.offsets)
        ends = await end_offsets(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        deliveries: list[SeenDelivery] = []
        unidentified: list[Unidentified] = []
        notices = 0
        behind = await _behind(consumer, tps, ends)
        quiet_since = time.monotonic()
        while behind:
            batches = await consumer.getmany(*behind, timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.offset >= ends[TopicPartition(record.topic, record.partition)]:
                        continue  # written after the read began: not part of this snapshot
                    seen = classify(record)
                    if seen is None:
                        notices += 1
                    elif isinstance(seen, Unidentified):
                        unidentified.append(seen)
                    else:
                        deliveries.append(seen)
            if any(batches.values()):
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > stall_seconds:
                raise BrokerError(
                    f"reading {', '.join(sorted({tp.topic for tp in behind}))}: nothing "
                    f"returned for {stall_seconds:.0f}s before the end offsets"
                )
            behind = await _behind(consumer, behind, ends)
        return Outbound(
            topics=wanted, deliveries=deliveries, notices=notices, unidentified=unidentified
        )
    except KafkaError as exc:
        raise BrokerError(f"reading the delivery topics at {bootstrap}: {exc}") from exc
    finally:
        await consumer.stop()


async def _behind(consumer: Any, tps: Sequence[Any], ends: dict[Any, int]) -> list[Any]:
    return [tp for tp in tps if await consumer.position(tp) < ends[tp]]
