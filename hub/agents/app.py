"""The faust app: router agents over ``hub.in.*`` and the audit sink over ``hub.audit``.

Thin glue: ``Router.route`` (pure) decides; these agents read, remember accepted event ids
in the seen-event store (SQLite in the data dir, shared by the hub's workers:
``hub.agents.seen``), and write. Processing is at-least-once with deterministic ids
(Tansu's transactions are not safe for exactly-once), in batches (``hub.agents.batches``): a
batch's audit records reach the broker, as one MAC-authenticated ``hub.audit`` message
(``hub.audit.stream``), before any of its deliveries is handed to the producer; an event is
acked only once every output is acknowledged, in offset order per partition, so a committed
offset never covers an event whose deliveries or audit records were not written; and the
route loop pauses while the audit store lags its decisions by more than
``HUB_AUDIT_OUTAGE_LIMIT`` (``hub.agents.audit_watch``).

Seen event ids are kept as long as the audit records of their events: the leader's hourly
expiry sweep forgets ids only behind what the audit log has pruned (``hub.agents.seen``).
Forgotten sooner, a replayed id would be recognised only by the audit store, which merely
ignores record ids it already holds: the replay would be delivered again with no audit
record of its own. Kept longer, an id would outlive the audit records that retention prunes,
the only other trace of its event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import faust

from hub.agents import lifecycle, timers
from hub.agents.audit_watch import AuditWatch
from hub.agents.batches import BatchPipeline, InOrderAcks
from hub.agents.intake import Intake
from hub.agents.ops import Metrics, OpsState
from hub.agents.outbox import AuditOutbox
from hub.agents.route_loop import AuditSide, RouteLoop, writer_name
from hub.agents.routing import Router
from hub.agents.seen import (
    delivered_lookup,
)
from hub.agents.sink import AuditSink, serve_audit_sink, sink_factory
from hub.agents.transport import HubApp, TrackingProducer
from hub.audit.lookups import delivered_to
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import AuditStore, open_store
from hub.audit.stream import load_audit_stream_key
from hub.broker import topics
from hub.clock import clock_for
from hub.durable import GroupSync
from hub.envelope.crypto import DataKeyCache
from hub.envelope.escrow import make_escrow
from hub.envelope.party import PartyEnvelope
from hub.envelope.wire import WireMessage
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY
from hub.log import get_logger
from hub.policies.model import Protocol
from hub.processes import ProcessRegistry, default_registry
from hub.schemas import SchemaRegistry
from hub.settings import HubSettings
from hub.state import open_case_keys, open_seen
from hub.workflows.agreements import AgreementGauges
from hub.workflows.marac import earlier_recipients

__all__ = ["build_router", "create_app"]

_log = get_logger("router")


def build_router(
    settings: HubSettings,
    protocol: Protocol,
    *,
    group: GroupSync | None = None,
    processes: ProcessRegistry | None = None,
) -> Router:
    """The router a worker runs: the hub's keys, pseudonyms, escrow, clock and registers.

    With ``group``, new case keys and register commits are fsynced by the group commit
    before the events that wrote them are acknowledged (``hub.durable``), not one by one.
    """
    pseudonymiser = Pseudonymiser(load_pseudonym_key(settings))
    processes = processes if processes is not None else default_registry()
    keys = FileKeyStore(settings.keys_dir)
    envelope = PartyEnvelope(
        HUB_PARTY,
        store=keys,
        cache=DataKeyCache(
            max_uses=protocol.crypto.max_data_key_uses,
            max_age=protocol.crypto.max_data_key_age_s,
        ),
    )
    cases = open_case_keys(settings, pseudonymise=pseudonymiser.case, group=group)
    router = Router(
        protocol,
        registry=SchemaRegistry(),
        pseudonymiser=pseudonymiser,
        envelope=envelope,
        escrow=make_escrow(cases),
        new_keys=cases.deferred,
        max_event_bytes=settings.max_event_bytes,
        clock=clock_for(settings.clock_file),
        previous=earlier_recipients(settings, pseudonymiser),
        # the processes' registers (``hub.processes``): read by their checks, written by the
        # worker applying each event's effects
        processes=processes,
        stores=processes.open_stores(settings, group=group),
        # who may acknowledge what: every worker's claims, then the audit store
        delivered=delivered_lookup(open_seen(settings), older=delivered_to(settings)),
        quarantine_max_bytes=settings.quarantine_max_bytes,
    )
    return router


def create_app(
    settings: HubSettings, *, protocol: Protocol, bootstrap: str, app_id: str = "hub-router"
) -> faust.App:
    """Build the faust app for a protocol. Nothing connects until a worker starts it."""
    app = HubApp(  # faust.App with the hub's fetch wait (hub.agents.transport)
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=settings.data_dir / "faust",  # not faust's default: ./<app id>-data
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        # fewer, larger produce requests; safe since the producer tracks its topics
        # (hub.agents.transport.TrackingProducer: a linger stranded records without it)
        producer_linger=settings.producer_linger,
        # a batch of 64 events is hundreds of deliveries: with aiokafka's 16 KiB a partition's
        # batch filled every few records and ``send`` waited a produce round trip to drain it
        producer_max_batch_size=settings.producer_batch_bytes,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        broker_commit_interval=0.5,
        stream_wait_empty=False,
        # records taken from the fetcher at a time: unbounded, a backlog arrives whole and
        # sets the worker's memory high-water mark (HubSettings.poll_records)
        broker_max_poll_records=settings.poll_records,
        table_standby_replicas=0,
        # Tansu holds a JoinGroup for the whole rebalance timeout before answering, so a
        # short timeout is the difference between a worker ready in seconds and in a minute.
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=1.0,
        broker_credentials=settings.kafka_security.faust_credentials(),
    )
    group = GroupSync()
    processes = default_registry()
    router = build_router(settings, protocol, group=group, processes=processes)
    # Shared by every worker of this hub (same data dir, or HUB_STATE_URL's database on any
    # host), so a claim is exact across workers; grouped, so a claimed id is durable before
    # its event is acknowledged.
    seen = open_seen(settings, group=group)
    state = OpsState()
    metrics = Metrics(state)
    metrics.registry.register(
        AgreementGauges(lambda: protocol, clock_for(settings.clock_file))
    )  # hub_agreement_review_days, hub_agreement_suspended

    async def send(message: WireMessage) -> Any:
        # straight to the producer (faust's Topic.send adds a channel hop per message); the
        # returned future resolves when the broker acknowledges the write
        return await app.producer.send(
            message.topic, message.key, message.value, None, None, message.headers
        )

    async def send_many(messages: Sequence[WireMessage]) -> Sequence[Awaitable[Any]]:
        # a batch's outputs at once: what ``send`` does per record, fewer calls per record
        # (``TrackingProducer.send_many``)
        driver: Any = app.producer  # faust's aiokafka Producer (ProducerT has no accessor)
        producer: TrackingProducer = driver._ensure_producer()
        return await producer.send_many(messages)

    audit = _audit_side(settings, group=group, send=send)
    # Batches (``hub.agents.batches``): a batch's audit records go to the broker first, its
    # deliveries once they are there; the next batch is routed meanwhile; events are acked in
    # offset order once everything is confirmed, and a failed confirmation stops the worker.
    pipeline = BatchPipeline(
        max_in_flight=settings.max_in_flight,
        send=send,
        send_many=send_many,
        sync=group.wait,
        crash=app.crash,
    )
    loop = RouteLoop(
        router=router,
        seen=seen,
        audit=audit,
        pipeline=pipeline,
        acks=InOrderAcks(),
        position=lambda: group.position,
        observe=metrics.observe,
    )
    intake = _route_loop(app, settings, protocol=protocol, loop=loop, state=state)
    sinks: list[AuditSink] = []
    _audit_tasks(
        app,
        settings,
        protocol=protocol,
        bootstrap=bootstrap,
        app_id=app_id,
        audit=audit,
        envelope=router.envelope,
        sinks=sinks,
        metrics=metrics,
    )
    timers.install(
        app,
        settings,
        protocol=protocol,
        processes=processes,
        cases=open_case_keys(settings, pseudonymise=router.pseudonymiser.case),
    )
    lifecycle.install(
        app,
        settings,
        bootstrap=bootstrap,
        state=state,
        metrics=metrics,
        watch=audit.watch,
        sinks=sinks,
        pipeline=pipeline,
        loop=loop,
        intake=intake,
    )
    return app


def _route_loop(
    app: HubApp, settings: HubSettings, *, protocol: Protocol, loop: RouteLoop, state: OpsState
) -> Intake:
    """Subscribe the inbound topics and run the route loop over what the consumer fetches."""
    inbound = app.topic(
        *(topics.inbound(p) for p in protocol.party_ids),
        topics.HUB_INBOUND,
        key_type=bytes,
        value_type=bytes,
    )
    # each fetch's records, whole (``hub.agents.intake``); at most two batches' worth wait here
    intake = app.intake = Intake(limit=max(settings.route_batch * 2, settings.poll_records))
    app.lost_log_grace = settings.lost_log_grace  # the fetch loop's (hub.broker.lost_log)
    # The inbound topics are subscribed without an agent: the consumer hands each fetch to
    # ``intake`` (``hub.agents.transport``), and the route loop takes batches from it.
    app.topics.add(inbound)

    async def route_batches() -> None:
        """Take what is ready (up to ``HUB_ROUTE_BATCH`` events) and route it as one batch."""
        await loop.run(
            take=partial(intake.take, settings.route_batch),
            # faust's: the offset is committable once acked in order
            ack=lambda message: app.consumer.ack(message),
            crash=app.crash,
            stopping=lambda: state.stopping,
            epoch=lambda: intake.epoch,
        )

    app.task(route_batches)
    return intake


def _audit_side(
    settings: HubSettings, *, group: GroupSync, send: Callable[[WireMessage], Awaitable[Any]]
) -> AuditSide:
    """The route loop's audit output: signed messages, the outbox, the watch on the store."""

    async def resend(message: WireMessage) -> None:
        await send(message)

    # the router's own connection to the store: what it has written, asked of it directly
    position: list[AuditStore] = []

    def stored(record_ids: Sequence[str]) -> set[str]:
        if not position:
            position.append(open_store(settings, lookups=True))
        return position[0].stored_ids(record_ids)

    # audit messages on disk until the store has them: a restarted worker sends them again
    outbox = AuditOutbox(settings.data_dir / "audit-outbox.sqlite3", group=group)
    watch = AuditWatch(
        limit=settings.audit_outage_limit,
        stored=stored,
        resend=resend,
        confirmed=outbox.remove,
    )
    return AuditSide(
        secret=load_audit_stream_key(settings), writer=writer_name(), outbox=outbox, watch=watch
    )


def _audit_tasks(
    app: faust.App,
    settings: HubSettings,
    *,
    protocol: Protocol,
    bootstrap: str,
    app_id: str,
    audit: AuditSide,
    envelope: PartyEnvelope,
    sinks: list[AuditSink],
    metrics: Metrics,
) -> None:
    """The watch on the audit store, and the audit sink when it runs in this worker."""

    async def audit_watch() -> None:
        await audit.watch_store()

    app.task(audit_watch)
    if settings.audit_sink != "worker":
        return
    make_sink = sink_factory(
        settings,
        parties=protocol.party_ids,
        envelope=envelope,
        on_sink=lambda sink: sinks.__setitem__(slice(None), [sink]),
    )

    async def audit_sink() -> None:
        """The sink inside this worker (``HUB_AUDIT_SINK=worker``); restarts itself."""
        await serve_audit_sink(
            make_sink,
            bootstrap=bootstrap,
            group_id=f"{app_id}-audit-sink",
            settings=settings,
            secret=audit.secret,
            on_refused=lambda refusal: metrics.refused.labels(reason=refusal.reason).inc(),
        )

    app.task(audit_sink)
