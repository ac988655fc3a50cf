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

import asyncio
import os
import socket
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import faust

from hub.agents.audit_watch import AuditWatch
from hub.agents.batches import BatchPipeline, InOrderAcks, Ticket
from hub.agents.intake import Intake
from hub.agents.ops import Metrics, OpsServer, OpsState
from hub.agents.outbox import AuditOutbox
from hub.agents.routing import Router, RouteResult
from hub.agents.seen import (
    Claim,
    delivered_lookup,
    forget_before,
    source_of_origin,
)
from hub.agents.sink import AuditSink, serve_audit_sink, sink_factory
from hub.agents.transport import HubApp
from hub.audit.lookups import delivered_to
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import AuditStore, open_store
from hub.audit.stream import audit_messages, load_audit_stream_key
from hub.broker import topics
from hub.clock import clock_for
from hub.durable import GroupSync
from hub.envelope.crypto import DataKeyCache
from hub.envelope.escrow import make_escrow
from hub.envelope.party import PartyEnvelope
from hub.envelope.wire import WireMessage
from hub.errors import HubError
from hub.keys.expiry import SWEEP_INTERVAL_S, expire_cases
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY
from hub.log import get_logger
from hub.models import Origin, event_key
from hub.policies.model import Protocol
from hub.processes import apply_effects, default_registry
from hub.schemas import SchemaRegistry
from hub.settings import HubSettings
from hub.state import open_case_keys, open_seen
from hub.workflows.agreements import AgreementGauges
from hub.workflows.marac import earlier_recipients

__all__ = ["build_router", "create_app"]

_log = get_logger("router")


def build_router(
    settings: HubSettings, protocol: Protocol, *, group: GroupSync | None = None
) -> Router:
    """The router a worker runs: the hub's keys, pseudonyms, escrow, clock and registers.

    With ``group``, new case keys and register commits are fsynced by the group commit
    before the events that wrote them are acknowledged (``hub.durable``), not one by one.
    """
    pseudonymiser = Pseudonymiser(load_pseudonym_key(settings))
    processes = default_registry()
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


def _periodic_sweep(
    app: faust.App,
    settings: HubSettings,
    name: str,
    sweep: Callable[[HubSettings], dict[str, Any]],
) -> None:
    """Run ``sweep`` every ``HUB_WORKFLOW_INTERVAL`` seconds on the leader, off the loop."""

    async def run() -> None:
        try:
            result = await asyncio.to_thread(sweep, settings)
        except HubError as exc:  # the next sweep retries; routing carries on meanwhile
            _log.error(f"{name}_failed", error=str(exc))
            return
        if result["published"]:
            _log.info(name, published=result["published"], held=len(result.get("held", ())))

    run.__name__ = run.__qualname__ = name  # faust names the timer after the function
    app.timer(interval=settings.workflow_interval, on_leader=True)(run)


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
    router = build_router(settings, protocol, group=group)
    envelope = router.envelope
    cases = open_case_keys(settings, pseudonymise=router.pseudonymiser.case)
    inbound = app.topic(
        *(topics.inbound(p) for p in protocol.party_ids),
        topics.HUB_INBOUND,
        key_type=bytes,
        value_type=bytes,
    )
    # Shared by every worker of this hub (same data dir, or HUB_STATE_URL's database on any
    # host), so a claim is exact across workers;
    # grouped, so a claimed id is on disk before its event is acknowledged.
    seen = open_seen(settings, group=group)
    state = OpsState()
    metrics = Metrics(state)
    metrics.registry.register(
        AgreementGauges(lambda: protocol, clock_for(settings.clock_file))
    )  # hub_agreement_review_days, hub_agreement_suspended
    sinks: list[AuditSink] = []
    audit_key = load_audit_stream_key(settings)
    writer = f"router/{socket.gethostname()}/{os.getpid()}"

    async def send(message: WireMessage) -> Any:
        # straight to the producer (faust's Topic.send adds a channel hop per message); the
        # returned future resolves when the broker acknowledges the write
        return await app.producer.send(
            message.topic, message.key, message.value, None, None, message.headers
        )

    async def resend(message: WireMessage) -> None:
        await send(message)

    # the router's own connection to the store: what it has written, asked of it directly
    position: list[AuditStore] = []

    def stored(record_ids: Sequence[str]) -> set[str]:
        if not position:
            position.append(open_store(settings))
        return position[0].stored_ids(record_ids)

    # audit messages on disk until the store has them: a restarted worker sends them again
    outbox = AuditOutbox(settings.data_dir / "audit-outbox.sqlite3", group=group)
    watch = AuditWatch(
        limit=settings.audit_outage_limit,
        stored=stored,
        resend=resend,
        confirmed=outbox.remove,
    )
    # Batches (``hub.agents.batches``): a batch's audit records go to the broker first, its
    # deliveries once they are there; the next batch is routed meanwhile; events are acked in
    # offset order once everything is confirmed, and a failed confirmation stops the worker.
    pipeline = BatchPipeline(
        max_in_flight=settings.max_in_flight, send=send, sync=group.wait, crash=app.crash
    )
    acks = InOrderAcks()
    # each fetch's records, whole (``hub.agents.intake``); at most two batches' worth wait here
    intake = app.intake = Intake(limit=max(settings.route_batch * 2, settings.poll_records))

    def claim(claims: list[Claim]) -> None:
        """Record that each origin carried its event (one commit); log a lost race.

        ``route`` looked each id up a moment ago; another worker can have claimed one since,
        from another record. Its deliveries are computed and valid, so they are not dropped:
        the race is logged (ids and origins only, never a payload).
        """
        for made, holder in zip(claims, seen.remember_many(claims), strict=True):
            if holder != made.origin:
                _log.warning(
                    "duplicate_event_id_race",
                    event_id=made.event_id,
                    origin=made.origin,
                    first=holder,
                )

    def confirmed(routed: list[tuple[Ticket, Origin, RouteResult]]) -> Callable[[], None]:
        """What to do once a batch's outputs are confirmed: ack in order, count, log."""

        def done() -> None:
            for ticket, origin, result in routed:
                acks.done(ticket)  # acks this event once every earlier one is acked too
                metrics.observe(origin.topic, result)
                _log.info(
                    "routed",
                    event_id=result.event_id,
                    origin=str(origin),
                    outcome=result.outcome,
                    delivered=result.delivered,
                    withheld=result.withheld,
                )

        return done

    async def route_batch(events: list[Any]) -> None:
        await watch.wait_open()  # no delivery while the store lags beyond the limit
        await pipeline.admit(len(events))  # raises a failed produce: restart from the commit
        try:
            routed: list[tuple[Ticket, Origin, RouteResult]] = []
            ack = app.consumer.ack  # faust's: the offset is committable once acked in order
            # the batch's claims, written together below; until then a later event of the
            # batch carrying the same id must find the earlier one's claim here
            claims: list[Claim] = []
            claimed: dict[str, str] = {}

            def first(key: str) -> str | None:
                return claimed.get(key) or seen.first(key)

            for message in events:
                origin = Origin(
                    topic=message.topic, partition=message.partition, offset=message.offset
                )
                ticket = acks.take((message.topic, message.partition), partial(ack, message))
                headers = list(message.headers or ())
                result = router.route(
                    origin=origin,
                    key=message.key,
                    value=message.value,
                    headers=headers,
                    seen=first,
                )
                if result.effects:  # before the next event: its checks must see them
                    try:
                        apply_effects(result.effects, router.stores)
                    except Exception as exc:  # as a failed write inside routing was
                        result = router.unapplied(
                            origin=origin,
                            key=message.key,
                            value=message.value,
                            headers=headers,
                            error=exc,
                        )
                if result.remember:
                    # the recipients too: a worker that did not route the event can then
                    # tell, before the audit store has the deliveries, who may acknowledge it
                    made = Claim(
                        event_id=result.event_id,
                        origin=str(origin),
                        at=router.clock(),
                        recipients=result.recipients,
                    )
                    claims.append(made)
                    key = event_key(source_of_origin(made.origin), made.event_id)
                    claimed.setdefault(key, made.origin)
                routed.append((ticket, origin, result))
            claim(claims)  # before any delivery of the batch is produced
            written = group.position  # after the claims: their commit is synced before the ack
            records = [record for _, _, result in routed for record in result.audit]
            audit = audit_messages(records, secret=audit_key, writer=writer)
            outbox.put((last_record, message) for message, last_record in audit)
            for message, last_record in audit:
                watch.decided(last_record, message)
            await pipeline.submit(
                audit=[message for message, _ in audit],
                outputs=[m for _, _, result in routed for m in result.messages],
                written=written,
                events=len(events),
                on_confirmed=confirmed(routed),
            )
        except BaseException:
            pipeline.abandon(len(events))
            raise

    # The inbound topics are subscribed without an agent: the consumer hands each fetch to
    # ``intake`` (``hub.agents.transport``), and the route loop takes batches from it.
    app.topics.add(inbound)

    @app.task  # type: ignore[untyped-decorator]
    async def route_batches() -> None:
        """Take what is ready (up to ``HUB_ROUTE_BATCH`` events) and route it as one batch."""
        try:
            while True:
                events = await intake.take(settings.route_batch)
                if state.stopping:  # draining: leave the rest uncommitted for the next owner
                    await asyncio.Event().wait()
                await route_batch(events)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # never acked: the worker restarts from the last commit
            _log.critical("route_loop_failed", error=type(exc).__name__)
            await app.crash(exc)
            raise

    @app.task  # type: ignore[untyped-decorator]
    async def audit_watch() -> None:
        watch.take_over(await asyncio.to_thread(outbox.pending))
        await watch.run()

    make_sink = sink_factory(
        settings,
        parties=protocol.party_ids,
        envelope=envelope,
        on_sink=lambda sink: sinks.__setitem__(slice(None), [sink]),
    )

    if settings.audit_sink == "worker":

        @app.task  # type: ignore[untyped-decorator]  # faust's decorators are untyped
        async def audit_sink() -> None:
            """The sink inside this worker (``HUB_AUDIT_SINK=worker``); restarts itself."""
            await serve_audit_sink(
                make_sink,
                bootstrap=bootstrap,
                group_id=f"{app_id}-audit-sink",
                settings=settings,
                secret=audit_key,
                on_refused=lambda refusal: metrics.refused.labels(reason=refusal.reason).inc(),
            )

    # Workflow sweeps (``hub marac sweep``, ``hub pubwatch sweep``) on the leader worker only.
    sweeps: list[tuple[str, Callable[[HubSettings], dict[str, Any]]]] = []
    if protocol.marac is not None:
        from hub.workflows.sweep import sweep_once  # the client side of the hub

        sweeps.append(("marac_sweep", sweep_once))
    if protocol.pubwatch is not None:
        from hub.workflows.pubwatch import sweep_bans

        sweeps.append(("pubwatch_sweep", sweep_bans))
    if protocol.governance is not None:  # IG alerts for agreements lapsing or lapsed
        from hub.workflows.agreements import sweep_agreements

        sweeps.append(("agreement_sweep", sweep_agreements))
    if settings.workflow_interval > 0:
        for name, sweep in sweeps:
            _periodic_sweep(app, settings, name, sweep)

    @app.timer(interval=SWEEP_INTERVAL_S, on_leader=True)  # type: ignore[untyped-decorator]
    async def expiry_sweep() -> None:
        """Crypto-shred expired cases, forget ids the audit log has pruned; the leader only.

        Cases: ``hub.keys.expiry``. Event ids: ``hub.agents.seen`` (kept as long as the audit
        records of their events).
        """

        def sweep() -> None:
            store = open_store(settings)
            try:
                expire_cases(cases, store, protocol, clock=clock_for(settings.clock_file))
            finally:
                store.close()

        def forget() -> tuple[int, str] | None:
            # its own connections, so the routers' lookups never wait for this one's lock
            store = open_store(settings)
            try:
                before = forget_before(store)
            finally:
                store.close()
            if before is None:  # the audit log has pruned nothing: every id is kept
                return None
            with open_seen(settings) as seen_ids:
                return seen_ids.prune(before), before.isoformat()

        try:
            await asyncio.to_thread(sweep)
        except HubError as exc:  # the next sweep retries; routing carries on meanwhile
            _log.error("expiry_sweep_failed", error=str(exc))
        try:
            forgotten = await asyncio.to_thread(forget)
        except HubError as exc:  # the next sweep retries
            _log.error("seen_prune_failed", error=str(exc))
            return
        if forgotten is not None and forgotten[0]:
            _log.info("seen_pruned", forgotten=forgotten[0], before=forgotten[1])

    async def consumer_lag(health: Any) -> tuple[int, dict[str, int]]:
        """Inbound partitions owned, and per topic the broker's end offset minus the committed.

        Asked of the broker itself (``hub.agents.health``): faust's cached highwater stays
        as it was when the broker dies. Also tells ``state`` whether the broker answered.
        """
        view = await health.refresh(app.consumer)
        state.observe_broker(
            reachable=view.broker_reachable,
            coordinator_known=view.coordinator_known,
            events_lost=view.events_lost,
        )
        return view.partitions, dict(view.consumer_lag)

    @app.task  # type: ignore[untyped-decorator]
    async def ops() -> None:
        """Refresh the ops snapshot every second; serve it when ``HUB_METRICS_PORT`` is set."""
        server: OpsServer | None = None
        if settings.metrics_port:
            try:
                server = OpsServer(
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                    state=state,
                    metrics=metrics,
                )
            except OSError as exc:  # routing matters more than metrics: carry on without
                _log.error("ops_port_unavailable", port=settings.metrics_port, error=str(exc))
            else:
                server.start()
                _log.info("ops_listening", port=server.port, pid=os.getpid())
        from hub.agents.health import WorkerHealth
        from hub.broker.watch import lost_path, snapshot_path

        health = WorkerHealth(
            bootstrap=bootstrap,
            snapshot_path=snapshot_path(settings.data_dir, os.getpid()),
            lost_path=lost_path(settings.data_dir),
            security=settings.kafka_security,
        )
        try:
            while True:
                owned, lag = await consumer_lag(health)
                sink = sinks[0] if sinks else None
                state.tick(
                    partitions=owned,
                    audit_open=not watch.blocked,
                    consumer_lag=lag,
                    audit_lag=watch.pending,
                    checkpoint_age=sink.checkpoint_age if sink else 0.0,
                )
                await asyncio.sleep(1.0)
        finally:
            await health.close()
            if server is not None:
                server.stop()

    @app.on_before_shutdown.connect
    async def _drain(sender: Any, /, *_args: Any, signal: Any, **_kw: Any) -> None:
        """SIGTERM: finish the event in hand, commit what is done (the producer is flushed next)."""
        state.stopping = True
        try:
            await asyncio.wait_for(pipeline.idle.wait(), timeout=settings.session_timeout)
            await app.consumer.commit()
        except TimeoutError:
            _log.warning("drain_timeout", pid=os.getpid())
            return
        _log.info("worker_drained", pid=os.getpid())

    @app.on_rebalance_complete.connect
    async def _ready(sender: Any, /, *_args: Any, signal: Any, **_kw: Any) -> None:
        """Tell ``hub up`` this worker has its partitions (a file per worker process)."""
        marker = settings.data_dir / "workers" / f"{os.getpid()}.ready"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(len(app.assignor.assigned_actives())))
        _log.info("worker_ready", pid=os.getpid())

    return app
