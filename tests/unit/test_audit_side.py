"""The route loop's audit output (``hub.agents.route_loop.AuditSide``) and the watch it feeds.

A reprocessed event gets the same record ids (``hub.models.record_id_for``), so the same
worker can route an event again (its partition given back after a rebalance, refetched from
the committed offset) while the audit message of its first routing is still unconfirmed. The
second batch's message can then end in the same record as the first, with other events'
records before it: the store holding that record says nothing of those.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from hub.agents.audit_watch import AuditWatch
from hub.agents.outbox import AuditOutbox
from hub.agents.route_loop import AuditSide
from hub.envelope.wire import WireMessage
from hub.models import AuditBatch, AuditDecision, AuditRecord, record_id_for

SECRET = os.urandom(32)


def delivered(event_id: str, *, minute: int = 0) -> AuditRecord:
    return AuditRecord(
        record_id=record_id_for(event_id, "west-mercia-police", "delivered", source="marac"),
        time=dt.datetime(2026, 12, 5, 9, minute, tzinfo=dt.UTC),
        event_id=event_id,
        event_type="uk.csp.marac.flag.raised.v1",
        publisher="marac",
        recipient="west-mercia-police",
        decision=AuditDecision.DELIVERED,
        rule="marac-police",
        reason="rule marac-police",
        fields=("case_ref",),
        payload_sha256="0" * 64,
    )


class Store:
    """The audit store as the watch asks it: which record ids it holds."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def stored(self, record_ids: Sequence[str]) -> set[str]:
        return self.ids & set(record_ids)

    def store(self, message: WireMessage) -> None:
        """What the sink does with a message: every record of it, in one transaction."""
        batch = AuditBatch.model_validate_json(message.value)
        self.ids.update(r.record_id for r in batch.records)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def paused(watch: AuditWatch) -> bool:
    return watch.blocked  # a call: mypy does not narrow it between awaits


def holds(messages: Sequence[WireMessage], record_id: str) -> bool:
    return any(
        record_id in {r.record_id for r in AuditBatch.model_validate_json(m.value).records}
        for m in messages
    )


async def test_a_message_ending_in_a_record_still_pending_is_watched_for_all_its_records(
    tmp_path: Path,
) -> None:
    store, clock, resent = Store(), Clock(), []

    async def resend(message: WireMessage) -> None:
        resent.append(message)

    with AuditOutbox(tmp_path / "audit-outbox.sqlite3") as outbox:
        watch = AuditWatch(
            limit=10.0, stored=store.stored, resend=resend, clock=clock, confirmed=outbox.remove
        )
        side = AuditSide(secret=SECRET, writer="router/test/1", outbox=outbox, watch=watch)
        (first,) = side.messages([delivered("evt-e")], batch=5)
        # batch 7: another partition's event D, then E again (same record id, routed later)
        other = delivered("evt-d")
        (second,) = side.messages([other, delivered("evt-e", minute=1)], batch=7)
        store.store(first)  # the sink has batch 5's message, not yet batch 7's
        await watch.check()
        # D's delivery is not in the store: the router must keep it (Router.forget_stored)
        assert watch.stored_through < 7
        # a worker restarted now would send D's record again; so would the watch, overdue
        assert holds([m for _, m in outbox.pending()], other.record_id)
        clock.now += 11.0
        await watch.check()
        assert paused(watch)
        assert holds(resent, other.record_id)
        store.store(second)
        await watch.check()
        assert watch.stored_through == 7
        assert not paused(watch)
        assert outbox.pending() == []
