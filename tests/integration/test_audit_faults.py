"""Fault probes: no disclosure without its audit record, whatever breaks.

Each probe attacks the path between a routing decision and its audit record, then reads
every delivery on the recipients' topics and the audit store, and reports the tally
(``tests.faults``): published, audited, delivered, unaudited, lost, duplicated. Unaudited
must be zero in every one.

- A record on ``hub.audit`` the sink cannot read, and a forged audit batch (valid JSON, no
  MAC), written by a broker client that is not the hub: both used to be a crash loop of the
  sink (with deliveries going on unaudited) or a record stored and covered by the signed
  checkpoints. Now both are quarantined with an audit record of their refusal, never stored.
- The audit store locked, then the memory-only broker killed and restarted: the audit
  messages on the broker die with it, but the deliveries a recipient already read do not.
  The router keeps each audit message until the store confirms it and produces it again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.broker import EmbeddedBroker, topics
from hub.broker.topics import all_topics, ensure_topics
from hub.models import AuditBatch, AuditDecision, AuditRecord, Delivery, record_id_for
from tests.conftest import RunningHub, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag
from tests.faults import kill_broker, read_deliveries, tally

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value=value, key=uuid.uuid4().bytes)
        finally:
            await producer.stop()

    asyncio.run(run())


def _quarantined(bootstrap: str) -> list[dict[str, bytes]]:
    """Headers of every record on hub.quarantine."""

    async def run() -> list[dict[str, bytes]]:
        consumer = AIOKafkaConsumer(
            topics.QUARANTINE, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            got = await consumer.getmany(timeout_ms=2000)
            return [{k: v or b"" for k, v in r.headers or ()} for rs in got.values() for r in rs]
        finally:
            await consumer.stop()

    return asyncio.run(run())


def _owed_views(hub: RunningHub, published: list[str]) -> list[tuple[str, str]]:
    """(event id, recipient) of every delivery the audit says each recipient is owed, read
    from the recipient's own topic with the SDK until it holds them all."""
    with hub.store() as store:
        owed: dict[str, set[str]] = {}
        for event_id in published:
            for r in store.query(event_id=event_id):
                if r.decision == AuditDecision.DELIVERED and r.recipient:
                    owed.setdefault(r.recipient, set()).add(event_id)
    seen: list[tuple[str, str]] = []
    for party, events in owed.items():

        def complete(ds: list[Delivery], e: set[str] = events) -> bool:
            return e <= {d.id for d in ds}

        view = hub.deliveries(party, until=complete, timeout=60)
        assert complete(view), f"{party}: an audited delivery is not on its topic"
        seen += [(d.id, party) for d in view if not d.from_hub and d.id in events]
    return seen


def _flags(hub: RunningHub, n: int) -> list[str]:
    return [
        hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
        for _ in range(n)
    ]


def test_unreadable_and_forged_audit_messages_are_refused_and_stop_nothing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """Own broker: the tally reads every record on the hub's topics, which must be this
    test's alone, and the audit outage limit differs from the shared hub's."""
    with EmbeddedBroker() as broker:
        hub = start_hub(broker.bootstrap, tmp_path / "data", audit_outage_limit=2.0)
        try:
            warm = _flags(hub, 1)
            hub.wait_records(warm[0], at_least=8)
            forged = AuditRecord(
                record_id=record_id_for("forged-event", "retail-crp", "delivered"),
                time=hub.records(warm[0])[0].time,
                event_id="forged-event",
                publisher="west-mercia-police",
                recipient="retail-crp",
                decision=AuditDecision.DELIVERED,
                reason="a disclosure that never happened",
            )
            _produce(
                broker.bootstrap,
                topics.AUDIT,
                [
                    b"\xff\xfe not an audit message",
                    AuditBatch(records=(forged,)).model_dump_json().encode(),
                ],
            )
            published = warm + _flags(hub, 20)
            wait_for(
                lambda: hub.decided(published) == len(published),
                timeout=90,
                what="every event decided past the bad audit messages",
            )
            parties = hub.supervisor.protocol.party_ids
            # audit first: an event is decided (in the store) before its deliveries are sent,
            # so each recipient's view is read (its SDK) until it holds what it is owed, and
            # every hub.out topic is read raw for deliveries to anyone else
            deliveries = sorted(
                set(_owed_views(hub, published)) | set(read_deliveries(broker.bootstrap, parties))
            )
            with hub.store() as store:
                counts = tally(store, published=published, deliveries=deliveries)
                record_property("tally_bad_audit_messages", str(counts))
                print(f"bad audit messages: {counts}")
                assert counts.unaudited == 0
                assert counts.lost == 0
                # eight recipients per flag (four of them health's urgent-care settings)
                assert counts.delivered == 8 * len(published)

                assert store.query(event_id="forged-event") == []  # never stored
                refusals = wait_for(
                    lambda: (
                        [
                            r
                            for r in store.query(decision=AuditDecision.REJECTED)
                            if r.event_id.startswith("audit:")
                        ]
                        or None
                    ),
                    what="the refusals' own audit records",
                )
                assert len(refusals) == 2
                assert all(r.reason.startswith("forged_audit_message:") for r in refusals)
                # `hub audit verify`: the log, with the refusals and without the forgery, holds
                report = AuditLog(store, signer=log_signer(hub.settings)).verify()
                assert report.ok
            reasons = [h.get("hub_reason") for h in _quarantined(broker.bootstrap)]
            assert reasons.count(b"forged_audit_message") == 2
            assert hub.supervisor.alive()
        finally:
            hub.supervisor.stop()


@pytest.mark.parametrize("worker_dies", [False, True], ids=["worker-lives", "worker-dies"])
def test_store_locked_then_broker_lost_leaves_no_delivery_unaudited(
    tmp_path: Path, record_property: Callable[[str, object], None], worker_dies: bool
) -> None:
    """The worker may die with the broker (Tansu refuses a first write to a re-created
    partition): its audit outbox on disk outlives it, and its successor sends it again."""
    broker = EmbeddedBroker()
    broker.start()
    hub = start_hub(broker.bootstrap, tmp_path / "data", audit_outage_limit=2.0)
    try:
        warm = _flags(hub, 1)
        hub.wait_records(warm[0], at_least=8)
        parties = hub.supervisor.protocol.party_ids
        lock = sqlite3.connect(hub.settings.audit_db_path, isolation_level=None, timeout=5)
        lock.execute("BEGIN EXCLUSIVE")  # the sink cannot write; the router must notice
        try:
            published = warm + _flags(hub, 12)
            # what recipients read while the store is locked and the broker still up
            read = wait_for(
                lambda: d if len(d := read_deliveries(broker.bootstrap, parties)) > 4 else None,
                timeout=60,
                what="deliveries read by recipients while the store is locked",
            )
            kill_broker(broker)  # memory only: hub.audit, hub.in.*, hub.out.* all gone
            broker.start()
            asyncio.run(
                ensure_topics(
                    broker.bootstrap,
                    all_topics(parties),
                    partitions=hub.settings.partitions,
                )
            )
            if worker_dies:
                assert hub.supervisor.kill_worker(0) > 0  # its memory is gone with it
                hub.supervisor.start_worker()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        read_ids = {event_id for event_id, _ in read}

        def audited() -> bool:
            with hub.store() as store:
                return tally(store, published=[], deliveries=read).unaudited == 0

        wait_for(audited, timeout=120, what="every delivery read before the loss to be audited")
        with hub.store() as store:
            counts = tally(store, published=published, deliveries=read)
        record_property(f"tally_store_locked_broker_lost_{worker_dies=}", str(counts))
        print(
            f"store locked, broker lost (worker dies: {worker_dies}): {counts} "
            f"(read before the loss: {len(read_ids)})"
        )
        assert counts.unaudited == 0
        assert hub.supervisor.alive()
    finally:
        hub.supervisor.stop()
        broker.stop()
