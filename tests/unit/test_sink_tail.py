"""The audit sink signs what other writers append to the store, not only its own writes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.agents.sink import AuditSink
from hub.audit.checkpoint import NoteSigner
from hub.audit.log import AuditLog
from hub.audit.sqlite import SQLiteAuditStore
from hub.audit.store import AuditStore
from hub.envelope.party import PartyEnvelope
from hub.models import AuditDecision, AuditRecord, record_id_for

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def consulted(i: int) -> AuditRecord:
    """A record the console or the CLI appends to the store itself (not through the sink)."""
    view = f"cli:{i}"
    return AuditRecord(
        record_id=record_id_for(view, None, "consulted"),
        time=T0,
        event_id=view,
        decision=AuditDecision.CONSULTED,
        reason="subject access report viewed by A Patel (command line): SAR 42",
        purpose="Subject access request",
    )


def test_a_record_another_writer_appended_is_signed_within_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteAuditStore(tmp_path / "audit.sqlite3") as store:
        signer = NoteSigner("test.hub/audit", Ed25519PrivateKey.generate())
        sink = AuditSink(
            store=store,
            log=AuditLog(store, signer=signer, heads_only=True),
            envelope=cast(PartyEnvelope, None),  # no parties: nothing is sealed
            parties=(),
            checkpoint_every=500,
            checkpoint_interval=3.0,
            clock=clock,
            _last_checkpoint=clock.now,
        )

        async def tick() -> bool:
            await sink.poll_tail()
            return sink.checkpoint_due()

        assert not asyncio.run(tick())  # an empty store: nothing to sign
        store.append([consulted(1)])  # the console, not the sink
        clock.now += 0.5
        assert not asyncio.run(tick())  # looked at again only every second
        clock.now += 0.6
        assert not asyncio.run(tick())  # seen, but within the interval
        assert sink.unsigned == 1
        clock.now += 2.0
        assert asyncio.run(tick())
        asyncio.run(sink.checkpoint())
        assert [size for size, _ in store.checkpoints()] == [1]
        assert sink.unsigned == 0

        clock.now += 10.0  # long quiet: the next record is signed at the next look
        store.append([consulted(2)])
        clock.now += 1.0
        assert asyncio.run(tick())
        asyncio.run(sink.checkpoint())
        assert [size for size, _ in store.checkpoints()] == [1, 2]
        clock.now += 10.0
        assert not asyncio.run(tick())  # nothing new: no checkpoint for its own sake


def test_a_restarted_sink_reads_what_is_already_signed(tmp_path: Path) -> None:
    clock = Clock()
    with SQLiteAuditStore(tmp_path / "audit.sqlite3") as store:
        signer = NoteSigner("test.hub/audit", Ed25519PrivateKey.generate())
        store.append([consulted(1), consulted(2)])
        AuditLog(store, signer=signer).checkpoint()
        sink = AuditSink(
            store=store,
            log=AuditLog(store, signer=signer, heads_only=True),
            envelope=cast(PartyEnvelope, None),
            parties=(),
            checkpoint_every=500,
            checkpoint_interval=3.0,
            clock=clock,
            _last_checkpoint=clock.now - 60,
        )
        asyncio.run(sink.poll_tail())
        assert sink.unsigned == 0
        assert not sink.checkpoint_due()


def test_the_newest_checkpoint_is_the_last_saved_on_each_backend(store: AuditStore) -> None:
    """One row, whatever the number signed: what each signing checks against."""
    assert store.newest_checkpoint() is None
    for size, note in ((1, "one\n"), (3, "three\n"), (2, "two\n"), (1, "one\n")):
        store.save_checkpoint(size, note)  # the same note again is kept once, where it was
    assert store.newest_checkpoint() == (2, "two\n") == store.checkpoints()[-1]
