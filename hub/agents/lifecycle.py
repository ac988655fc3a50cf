"""A worker's ops loop and lifecycle: the ops snapshot, draining on SIGTERM, ready markers.

- ``ops_loop`` refreshes the ops snapshot (``hub.agents.ops.OpsState``) every second from the
  broker (``hub.agents.health``), the audit watch and the sink, and serves it when
  ``HUB_METRICS_PORT`` is set;
- ``drain`` (SIGTERM) stops the route loop taking batches, waits for the pipeline to be idle
  and commits what is done;
- ``settle`` (a rebalance) drops what the route loop has not taken, finishes what it has
  and commits, so a partition changes hands with nothing of it in flight;
- ``mark_ready`` tells ``hub up`` this worker has its partitions (a file per worker process),
  once the heap is frozen (``hub.agents.heap``).

Each takes what it needs as arguments (``install`` wires them to faust's signals), so a test
calls one with its own state.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.agents.heap import freeze_heap
from hub.agents.ops import Metrics, OpsServer, OpsState
from hub.log import get_logger

if TYPE_CHECKING:
    import faust

    from hub.agents.audit_watch import AuditWatch
    from hub.agents.batches import BatchPipeline
    from hub.agents.intake import Intake
    from hub.agents.route_loop import RouteLoop
    from hub.agents.sink import AuditSink
    from hub.settings import HubSettings

__all__ = ["commit_acked", "drain", "install", "mark_ready", "ops_loop", "settle"]

_log = get_logger("router")


async def ops_loop(
    settings: HubSettings,
    *,
    bootstrap: str,
    state: OpsState,
    metrics: Metrics,
    watch: AuditWatch,
    sinks: list[AuditSink],
    consumer: Callable[[], Any],
) -> None:
    """Refresh the ops snapshot every second; serve it when ``HUB_METRICS_PORT`` is set."""
    server: OpsServer | None = None
    if settings.metrics_port:
        try:
            server = OpsServer(
                host=settings.metrics_host, port=settings.metrics_port, state=state, metrics=metrics
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
            # asked of the broker itself (hub.agents.health): faust's cached highwater stays
            # as it was when the broker dies; also tells ``state`` whether the broker answered
            view = await health.refresh(consumer())
            state.observe_broker(
                reachable=view.broker_reachable,
                coordinator_known=view.coordinator_known,
                events_lost=view.events_lost,
            )
            sink = sinks[0] if sinks else None
            state.tick(
                partitions=view.partitions,
                audit_open=not watch.blocked,
                consumer_lag=dict(view.consumer_lag),
                audit_lag=watch.pending,
                checkpoint_age=sink.checkpoint_age if sink else 0.0,
            )
            await asyncio.sleep(1.0)
    finally:
        await health.close()
        if server is not None:
            server.stop()


async def drain(
    *,
    state: OpsState,
    pipeline: BatchPipeline,
    commit: Callable[[], Awaitable[Any]],
    within: float,
) -> bool:
    """SIGTERM: finish the batches in hand and commit what is done; False past ``within`` s.

    ``state.stopping`` stops the route loop taking another batch (the producer is flushed
    by faust next).
    """
    state.stopping = True
    try:
        await asyncio.wait_for(pipeline.idle.wait(), timeout=within)
        await commit()
    except TimeoutError:
        _log.warning("drain_timeout", pid=os.getpid())
        return False
    _log.info("worker_drained", pid=os.getpid())
    return True


async def settle(
    *,
    intake: Intake,
    handed_over: asyncio.Event,
    pipeline: BatchPipeline,
    commit: Callable[[], Awaitable[Any]],
    within: float,
) -> bool:
    """A rebalance is revoking partitions: leave none of them in flight; False past ``within``.

    faust seeks every partition it assigns back to its committed offset, so whatever this
    worker fetched but had not committed would be routed a second time, here or by the new
    owner (the same ids, but a second copy on each recipient's topic). So: the records not
    yet taken are dropped (``Intake.discard``: never acked, they are fetched again), the
    batch the loop holds and the batches in the pipeline are finished, and what they
    acknowledged is committed. Past ``within`` (kept under the rebalance timeout, or the
    group would expel this worker) it commits what is done and lets the rebalance go on:
    what finishes later is routed again, as at least once allows.

    ``handed_over`` is ``RouteLoop.handed_over``: set while the loop holds no batch that it
    has taken but not yet given to the pipeline.
    """
    dropped = intake.discard()
    try:
        await asyncio.wait_for(_finished(handed_over, pipeline), timeout=within)
    except TimeoutError:
        _log.warning("rebalance_settle_timeout", pid=os.getpid(), dropped=dropped)
        await commit()
        return False
    await commit()
    _log.info("rebalance_settled", pid=os.getpid(), dropped=dropped)
    return True


async def _finished(handed_over: asyncio.Event, pipeline: BatchPipeline) -> None:
    await handed_over.wait()  # the batch taken before the discard is in the pipeline
    await pipeline.idle.wait()


async def commit_acked(consumer: Any) -> None:
    """Commit every offset acknowledged so far, even while another commit is under way.

    faust's ``Consumer.commit`` returns at once, committing nothing, when a commit is already
    running (``maybe_wait_for_commit_to_finish``): the periodic one every
    ``broker_commit_interval``, or the fetch loop's every ``broker_commit_every`` acks. That
    one took its offsets when it began, often before the last batches of a settle or a drain
    were acknowledged (it waits for the producer's flush first), so those would stay
    uncommitted and be routed again by the partition's next owner. Waiting for it first, the
    commit made here takes every acknowledgement.
    """
    await consumer.maybe_wait_for_commit_to_finish()
    await consumer.commit()


def mark_ready(data_dir: Path, partitions: int) -> Path:
    """Tell ``hub up`` this worker has its partitions: ``workers/<pid>.ready`` holds how many."""
    marker = data_dir / "workers" / f"{os.getpid()}.ready"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(partitions))
    _log.info("worker_ready", pid=os.getpid())
    return marker


def install(
    app: faust.App,
    settings: HubSettings,
    *,
    bootstrap: str,
    state: OpsState,
    metrics: Metrics,
    watch: AuditWatch,
    sinks: list[AuditSink],
    pipeline: BatchPipeline,
    loop: RouteLoop,
    intake: Intake,
) -> None:
    """The ops task and the drain, settle and ready handlers, on ``app``."""

    async def ops() -> None:
        await ops_loop(
            settings,
            bootstrap=bootstrap,
            state=state,
            metrics=metrics,
            watch=watch,
            sinks=sinks,
            consumer=lambda: app.consumer,
        )

    app.task(ops)

    @app.on_before_shutdown.connect
    async def _drain(sender: Any, /, *_args: Any, signal: Any, **_kw: Any) -> None:
        await drain(
            state=state,
            pipeline=pipeline,
            commit=lambda: commit_acked(app.consumer),
            within=settings.session_timeout,
        )

    @app.on_partitions_revoked.connect
    async def _settle(sender: Any, /, *_args: Any, signal: Any, **_kw: Any) -> None:
        # inside faust's revoke handler, before the group moves on (aiokafka awaits it)
        await settle(
            intake=intake,
            handed_over=loop.handed_over,
            pipeline=pipeline,
            commit=lambda: commit_acked(app.consumer),
            within=settings.rebalance_timeout / 2,
        )

    @app.on_rebalance_complete.connect
    async def _ready(sender: Any, /, *_args: Any, signal: Any, **_kw: Any) -> None:
        frozen = freeze_heap()  # started (or reassigned): what lives now lives on (heap.py)
        _log.debug("heap_frozen", objects=frozen)
        mark_ready(settings.data_dir, len(app.assignor.assigned_actives()))
