"""The route loop: take a batch, route each event, write its effects, hand the batch over.

For each event of a batch, in offset order (``route_events``):

1. ``Router.route`` decides (pure: deliveries, audit records, effects);
2. the event's effects (``hub.processes``: register updates) are applied at once, before the
   next event is routed, so a later event's checks see them; a write that fails turns the
   event into a quarantined one (``Router.unapplied``), as a write failing inside routing
   always did;
3. an accepted event is claimed in the seen-event store (with its recipients), the batch's
   claims in one commit before any delivery is produced.

Then (``route_batch``) the batch's audit records become signed ``hub.audit`` messages, kept
in the outbox until the store has them (``AuditSide``), and the batch goes to the pipeline
(``hub.agents.batches``): audit first, deliveries once it is on the broker, acknowledgements
in offset order once everything is confirmed and the group commit has synced what the batch
wrote (claims, registers, case keys: ``written``, the group position after the claims).

Faust-free: the app (``hub.agents.app``) passes the consumer's ack, the intake and the
crash; a test passes its own.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol

from hub.agents.audit_watch import AuditWatch
from hub.agents.batches import BatchPipeline, InOrderAcks, Ticket
from hub.agents.outbox import AuditOutbox
from hub.agents.routing import Router, RouteResult
from hub.agents.seen import Claim, source_of_origin, source_of_topic
from hub.audit.stream import audit_messages
from hub.envelope.wire import WireMessage
from hub.log import get_logger
from hub.models import AuditBatch, AuditRecord, Origin, event_key
from hub.processes.base import apply_effects

__all__ = ["AuditSide", "ClaimStore", "InboundRecord", "RouteLoop", "writer_name"]

_log = get_logger("router")


class InboundRecord(Protocol):
    """What the loop reads of a consumed record (faust's ``Event.message``)."""

    @property
    def topic(self) -> str: ...  # noqa: D102
    @property
    def partition(self) -> int: ...  # noqa: D102
    @property
    def offset(self) -> int: ...  # noqa: D102
    @property
    def key(self) -> bytes | None: ...  # noqa: D102
    @property
    def value(self) -> bytes | None: ...  # noqa: D102
    @property
    def headers(self) -> Any: ...  # noqa: D102


class ClaimStore(Protocol):
    """The seen-event store as the loop uses it (``hub.agents.seen.SeenEvents``)."""

    def first(self, key: str) -> str | None: ...  # noqa: D102
    def first_many(self, keys: Iterable[str]) -> dict[str, str]: ...  # noqa: D102
    def remember_many(self, claims: Sequence[Claim]) -> list[str]: ...  # noqa: D102


def writer_name() -> str:
    """The name this worker signs the audit stream with: ``router/<host>/<pid>``."""
    return f"router/{socket.gethostname()}/{os.getpid()}"


class AuditSide:
    """The route loop's audit output: signed messages, kept in the outbox, watched.

    ``messages`` turns a batch's records into ``hub.audit`` messages (``hub.audit.stream``),
    puts them in the outbox (a restarted worker sends them again) and tells the watch
    (``hub.agents.audit_watch``), which pauses the loop while the store lags.
    """

    def __init__(
        self, *, secret: bytes, writer: str, outbox: AuditOutbox, watch: AuditWatch
    ) -> None:
        self.secret = secret
        self.writer = writer
        self.outbox = outbox
        self.watch = watch

    def messages(self, records: list[AuditRecord], *, batch: int = 0) -> list[WireMessage]:
        """The batch's audit messages, in the outbox and pending in the watch."""
        audit = audit_messages(records, secret=self.secret, writer=self.writer)
        kept: list[tuple[str, WireMessage]] = []
        for message, last_record in audit:
            for record_id in self._watched_by(message, last_record):
                self.watch.decided(record_id, message, batch=batch)
                kept.append((record_id, message))
        self.outbox.put(kept)
        return [message for message, _ in audit]

    def _watched_by(self, message: WireMessage, last_record: str) -> list[str]:
        """The record ids whose being stored shows the store holds ``message``.

        Its last record's, as a rule: the store writes a message's records in one
        transaction. Not when that id is already pending for another message: a re-routed
        event has the same record ids (``record_id_for``), so a later batch's message (other
        events' records, then that event's again) can end in the record an earlier message,
        not yet stored, ended in; the store holding it says nothing of the others. Such a
        message is watched (and kept in the outbox) by each of its records not already
        pending; a pending one is confirmed by its own entry.
        """
        held = self.watch.held(last_record)
        if held is None or held.value == message.value:
            return [last_record]
        ids = (r.record_id for r in AuditBatch.model_validate_json(message.value).records)
        return [i for i in dict.fromkeys(ids) if self.watch.held(i) is None]

    async def watch_store(self) -> None:
        """Send again what the outbox held at start, then watch the store for ever."""
        self.watch.take_over(await asyncio.to_thread(self.outbox.pending))
        await self.watch.run()


Routed = list[tuple[Ticket, Origin, RouteResult]]


def _batch_keys(events: Sequence[InboundRecord]) -> set[str]:
    """The seen-store keys the router will ask for these records: source and id headers.

    Both the ``ce_source`` header and the topic's owner (``source_of_origin``: how the loop
    claims a peer's transfer) are asked, so either lookup is answered from the batch read.
    """
    keys: set[str] = set()
    for message in events:
        found: dict[str, str] = {}
        for name, raw in message.headers or ():
            if name in ("ce_id", "ce_source") and raw is not None:
                found[name] = raw.decode("utf-8", "replace")
        event_id = found.get("ce_id")
        if event_id is None:
            continue
        if "ce_source" in found:
            keys.add(event_key(found["ce_source"], event_id))
        owner = source_of_topic(message.topic)
        if owner:
            keys.add(event_key(owner, event_id))
    return keys


class RouteLoop:
    """Route batches of inbound records (see the module docstring for the order of things).

    Args:
        router: decides each event.
        seen: the seen-event store, shared by the hub's workers.
        audit: the batch's audit messages (``AuditSide``).
        pipeline: hands a batch over (``BatchPipeline``).
        acks: acknowledges events in offset order (``InOrderAcks``).
        position: the group commit's position now (``GroupSync.position``).
        observe: counts a routed event (``Metrics.observe``).
    """

    def __init__(
        self,
        *,
        router: Router,
        seen: ClaimStore,
        audit: AuditSide,
        pipeline: BatchPipeline,
        acks: InOrderAcks,
        position: Callable[[], int],
        observe: Callable[[str, RouteResult], None],
    ) -> None:
        self.router = router
        self.seen = seen
        self.audit = audit
        self.pipeline = pipeline
        self.acks = acks
        self.position = position
        self.observe = observe
        #: set while the loop holds no batch between taking it and handing it to the
        #: pipeline (a rebalance waits for it, then for the pipeline: ``lifecycle.settle``)
        self.handed_over = asyncio.Event()
        self.handed_over.set()

    def route_one(
        self, message: InboundRecord, origin: Origin, first: Callable[[str], str | None]
    ) -> RouteResult:
        """Route one record and write its effects (or quarantine it if they cannot be)."""
        headers = list(message.headers or ())
        result = self.router.route(
            origin=origin, key=message.key, value=message.value, headers=headers, seen=first
        )
        if result.effects:  # before the next event: its checks must see them
            try:
                apply_effects(result.effects, self.router.stores)
            except Exception as exc:  # as a failed write inside routing was
                result = self.router.unapplied(
                    origin=origin, key=message.key, value=message.value, headers=headers, error=exc
                )
        return result

    def route_events(
        self, events: Sequence[InboundRecord], ack: Callable[[Any], Any]
    ) -> tuple[Routed, list[Claim]]:
        """Route a batch in order: each event's effects written before the next is routed.

        The case keys the batch creates are written together when its routing ends
        (``Router.new_keys``), before anything of it is produced. If another worker wrote
        one of those cases' key first, the deliveries sealed under ours would carry an
        escrow nothing opens: their escrow is sealed again under the stored key
        (``Router.reescrow``). No event is routed twice, so none is decided again against
        registers its own batch has changed.

        Returns each event with its ticket (taken in offset order) and result, and the
        claims of the accepted ones (not yet written: ``claim``).
        """
        with self.router.new_keys() as lost:
            results, claims = self._route_all(events)
        if lost:
            self.router.reescrow([result for _, result in results], lost)
        routed: Routed = [
            (self.acks.take((m.topic, m.partition), partial(ack, m)), origin, result)
            for m, (origin, result) in zip(events, results, strict=True)
        ]
        return routed, claims

    def _route_all(
        self, events: Sequence[InboundRecord]
    ) -> tuple[list[tuple[Origin, RouteResult]], list[Claim]]:
        """``route_events``' one pass: each event's origin and result, and the claims."""
        routed: list[tuple[Origin, RouteResult]] = []
        # the batch's claims, written together by ``claim``; until then a later event of the
        # batch carrying the same id must find the earlier one's claim here
        claims: list[Claim] = []
        claimed: dict[str, str] = {}
        # the batch's ids looked up in one read; a key the router asks that was not among
        # them (a record without those headers, a transfer named by its peer) is asked alone
        asked = _batch_keys(events)
        known = self.seen.first_many(asked)

        def first(key: str) -> str | None:
            if key in claimed:
                return claimed[key]
            return known.get(key) if key in asked else self.seen.first(key)

        for message in events:
            origin = Origin(topic=message.topic, partition=message.partition, offset=message.offset)
            result = self.route_one(message, origin, first)
            if result.remember:
                # the recipients too: a worker that did not route the event can then tell,
                # before the audit store has the deliveries, who may acknowledge it
                made = Claim(
                    event_id=result.event_id,
                    origin=str(origin),
                    at=self.router.clock(),
                    recipients=result.recipients,
                )
                claims.append(made)
                claimed.setdefault(
                    event_key(source_of_origin(made.origin), made.event_id), made.origin
                )
            routed.append((origin, result))
        return routed, claims

    def claim(self, claims: list[Claim]) -> None:
        """Record that each origin carried its event (one commit); log a lost race.

        ``route`` looked each id up a moment ago; another worker can have claimed one since,
        from another record. Its deliveries are computed and valid, so they are not dropped:
        the race is logged (ids and origins only, never a payload).
        """
        for made, holder in zip(claims, self.seen.remember_many(claims), strict=True):
            if holder != made.origin:
                _log.warning(
                    "duplicate_event_id_race",
                    event_id=made.event_id,
                    origin=made.origin,
                    first=holder,
                )

    def confirmed(self, routed: Routed) -> Callable[[], None]:
        """What to do once a batch's outputs are confirmed: ack in order, count, log."""

        def done() -> None:
            # bound once for the batch: the module's logger is a lazy proxy that binds a new
            # logger on every call (structlog's cache is off so tests can reconfigure it)
            log = _log.bind()
            for ticket, origin, result in routed:
                self.acks.done(ticket)  # acks this event once every earlier one is acked too
                self.observe(origin.topic, result)
                log.info(
                    "routed",
                    event_id=result.event_id,
                    origin=str(origin),
                    outcome=result.outcome,
                    delivered=result.delivered,
                    withheld=result.withheld,
                )

        return done

    async def route_batch(self, events: Sequence[InboundRecord], ack: Callable[[Any], Any]) -> None:
        """Route one batch and hand it to the pipeline (audit first, acks in order)."""
        await self.audit.watch.wait_open()  # no delivery while the store lags beyond the limit
        await self.pipeline.admit(len(events))  # raises a failed produce: restart from commit
        try:
            # what the router kept of batches the store now holds is asked of the store
            self.router.forget_stored(self.audit.watch.stored_through)
            batch = self.router.batch = self.router.batch + 1
            routed, claims = self.route_events(events, ack)
            self.claim(claims)  # before any delivery of the batch is produced
            written = self.position()  # after the claims: synced before the ack
            audit = self.audit.messages(
                [r for _, _, result in routed for r in result.audit], batch=batch
            )
            await self.pipeline.submit(
                audit=audit,
                outputs=[m for _, _, result in routed for m in result.messages],
                written=written,
                events=len(events),
                on_confirmed=self.confirmed(routed),
            )
        except BaseException:
            self.pipeline.abandon(len(events))
            raise

    async def _through_the_gate(self, taken_in: int, epoch: Callable[[], int]) -> bool:
        """Wait at the audit gate holding nothing; False if a rebalance dropped the batch.

        Waiting here, the loop holds nothing a rebalance must finish: past the gate
        (``route_batch`` waits at it too) ``settle`` would wait for the store until its time
        ran out, then the batch would be routed after the partition had moved, a second copy
        by its next owner. The gate is the store's lag against a clock, so it can close again
        between opening and this loop running: it is asked again until it is open now.
        """
        while self.audit.watch.blocked:
            await self.audit.watch.wait_open()
            if epoch() != taken_in:
                return False
        return True

    async def run(
        self,
        *,
        take: Callable[[], Awaitable[Sequence[InboundRecord]]],
        ack: Callable[[Any], Any],
        crash: Callable[[BaseException], Awaitable[Any]],
        stopping: Callable[[], bool],
        epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        """Take what is ready and route it as one batch, for ever; a failure crashes.

        ``epoch`` is the intake's (``Intake.epoch``): a batch held at the closed audit gate
        when a rebalance empties the intake is dropped with it, not routed after the
        partition has moved (it is fetched again from the committed offset).
        """
        try:
            while True:
                events = await take()
                taken_in = epoch()
                if stopping():  # draining: leave the rest uncommitted for the next owner
                    await asyncio.Event().wait()
                if not await self._through_the_gate(taken_in, epoch):
                    continue  # dropped by a rebalance, never acked
                self.handed_over.clear()
                try:
                    await self.route_batch(events, ack)
                finally:
                    self.handed_over.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # never acked: the worker restarts from the last commit
            _log.critical("route_loop_failed", error=type(exc).__name__)
            await crash(exc)
            raise
