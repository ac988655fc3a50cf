"""Fault probes' bookkeeping: what was published, audited, delivered, unaudited, lost, doubled.

Every fault test ends with the same tally, read from the real places: the recipients' topics
(every record on ``hub.out.<party>`` that is an event delivery, read raw: its ``ce_id`` and
``ce_hubrecipient`` headers, no key needed) and the audit store (``delivered`` records). A
delivery on a recipient topic with no ``delivered`` record for that event and recipient is
*unaudited*: the number every fault must leave at zero.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.audit.sqlite import SQLiteAuditStore
from hub.broker import topics
from hub.models import AuditDecision

__all__ = ["Tally", "read_deliveries", "tally"]

#: the hub's own notices to a party (rejections, suspensions, checkpoints) are not deliveries
_HUB_SOURCE = "/parties/hub"


@dataclass(frozen=True)
class Tally:
    """The six counts the issue asks every fault probe to report."""

    published: int
    audited: int
    delivered: int
    unaudited: int
    lost: int
    duplicated: int

    def __str__(self) -> str:
        return (
            f"published {self.published}, audited {self.audited}, delivered {self.delivered}, "
            f"unaudited {self.unaudited}, lost {self.lost}, duplicated {self.duplicated}"
        )


def read_deliveries(bootstrap: str, parties: Iterable[str]) -> list[tuple[str, str]]:
    """Every event delivery on the parties' topics now, as (event id, recipient), repeats kept."""

    async def run() -> list[tuple[str, str]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            wanted = {topics.outbound(p) for p in parties}
            names = await consumer.topics()
            tps = [
                TopicPartition(t, p)
                for t in sorted(wanted & names)
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            if not tps:
                return []
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found: list[tuple[str, str]] = []
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in tps])

            while await behind():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        headers = {k: (v or b"").decode() for k, v in record.headers or ()}
                        if headers.get("ce_source") == _HUB_SOURCE:
                            continue
                        found.append((headers["ce_id"], headers["ce_hubrecipient"]))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(run())


def tally(
    store: SQLiteAuditStore, *, published: list[str], deliveries: list[tuple[str, str]]
) -> Tally:
    """Count what the probe saw against what the store holds."""
    event_ids = set(published) | {event_id for event_id, _ in deliveries}
    delivered_records: Counter[tuple[str, str]] = Counter()
    audited_events: set[str] = set()
    for event_id in event_ids:
        for record in store.query(event_id=event_id):
            audited_events.add(event_id)
            if record.decision == AuditDecision.DELIVERED and record.recipient:
                delivered_records[(event_id, record.recipient)] += 1
    seen = Counter(deliveries)
    unaudited = sum(1 for pair in seen if pair not in delivered_records)
    duplicated = sum(n - 1 for n in seen.values() if n > 1) + sum(
        n - 1 for n in delivered_records.values() if n > 1
    )
    return Tally(
        published=len(published),
        audited=len(audited_events & set(published)),
        delivered=len(seen),
        unaudited=unaudited,
        lost=len(set(published) - audited_events),
        duplicated=duplicated,
    )
