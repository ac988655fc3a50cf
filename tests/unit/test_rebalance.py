"""A rebalance leaves nothing of a revoked partition in flight (``lifecycle.settle``).

faust seeks every partition it assigns back to its committed offset. Whatever a worker had
fetched but not committed when a rebalance began would otherwise be routed twice: from the
intake by this worker and again after the seek (here or by the partition's new owner), a
second copy of each delivery on the recipients' topics. The pieces are tested here without
faust; ``test_scale_out`` moves partitions between real workers and counts the copies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiokafka
import pytest
from faust.types import TP

from hub.agents import lifecycle
from hub.agents.audit_watch import AuditWatch
from hub.agents.intake import Intake
from hub.agents.route_loop import RouteLoop
from hub.agents.transport import HubApp
from tests.unit.test_batches import World, settle


async def test_a_rebalance_drops_what_waits_and_what_was_fetched_before_it() -> None:
    intake = Intake(limit=2)
    assert await intake.put(["r1", "r2"])
    waiting = asyncio.ensure_future(intake.put(["r3"]))  # no room: waits
    await settle()
    before = intake.epoch

    assert intake.discard() == 2
    assert await waiting is False  # woken by the room, and its fetch is from before
    assert len(intake) == 0
    assert await intake.put(["r4"], epoch=before) is False  # fetched before, handed over after
    assert len(intake) == 0
    assert await intake.put(["r5"], epoch=intake.epoch)
    assert await intake.take(10) == ["r5"]


async def test_settling_finishes_the_held_batch_and_the_pipeline_then_commits() -> None:
    world = World()
    intake = Intake(limit=8)
    await intake.put(["later"])
    handed_over = asyncio.Event()  # the loop has taken e1 and is routing it
    commits: list[list[str]] = []

    async def commit() -> None:
        commits.append(list(world.acked))

    settling = asyncio.ensure_future(
        lifecycle.settle(
            intake=intake,
            handed_over=handed_over,
            pipeline=world.pipeline,
            commit=commit,
            within=30.0,
        )
    )
    await settle()
    assert len(intake) == 0  # not taken: dropped, fetched again after the seek
    assert not settling.done()

    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    handed_over.set()
    await settle()
    assert not settling.done()  # e1's delivery is not on the broker yet
    world.ok("a1")
    await settle()
    assert not settling.done()
    world.ok("d1")
    await settle()
    assert settling.done()
    assert settling.result() is True
    assert commits == [["e1"]]  # committed once, after e1 was acknowledged


async def test_settling_past_its_time_commits_what_is_done_and_lets_the_group_move_on() -> None:
    world = World()
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    await world.batch([(1, "e2")], audit=["a2"], outputs=["d2"])  # a2 never confirmed
    world.ok("a1")
    await settle()
    world.ok("d1")
    await settle()
    assert world.acked == ["e1"]
    commits: list[list[str]] = []

    async def commit() -> None:
        commits.append(list(world.acked))

    handed_over = asyncio.Event()
    handed_over.set()
    done = await lifecycle.settle(
        intake=Intake(limit=8),
        handed_over=handed_over,
        pipeline=world.pipeline,
        commit=commit,
        within=0.2,
    )
    assert done is False
    assert commits == [["e1"]]  # e2 stays uncommitted: its next owner routes it again


async def test_the_route_loop_shows_when_it_holds_a_batch_it_has_not_handed_over() -> None:
    loop = _route_loop(_Gate(open_=True))
    gate = asyncio.Event()
    routed: list[list[str]] = []

    async def route_batch(events: list[str], _ack: Any) -> None:
        await gate.wait()
        routed.append(events)

    loop.route_batch = route_batch  # type: ignore[method-assign,assignment]
    batches = iter([["e1", "e2"]])
    no_more = asyncio.Event()

    async def take() -> list[str]:
        for batch in batches:
            return batch
        await no_more.wait()
        return []

    async def crash(_exc: BaseException) -> None:
        return None

    assert loop.handed_over.is_set()
    running = asyncio.ensure_future(
        loop.run(take=cast(Any, take), ack=lambda _m: None, crash=crash, stopping=lambda: False)
    )
    await settle()
    assert not loop.handed_over.is_set()  # e1 and e2 are taken, not yet in the pipeline
    gate.set()
    await settle()
    assert loop.handed_over.is_set()
    assert routed == [["e1", "e2"]]
    running.cancel()


@pytest.mark.parametrize("signal", ["on_partitions_revoked", "on_before_shutdown"])
async def test_settle_and_drain_commit_what_was_acked_after_a_commit_already_under_way(
    signal: str, tmp_path: Path
) -> None:
    # faust's Consumer.commit returns without committing while another commit runs (the
    # periodic one, every broker_commit_interval), and that one took its offsets before the
    # batch the settle (or drain) waited for was acknowledged
    app = HubApp("settle-commit", broker="kafka://127.0.0.1:9", web_enabled=False)
    with _unstarted(app) as consumer:  # faust's real commit; no broker behind it
        await _commit_after_the_one_under_way(app, consumer, signal, tmp_path)


async def _commit_after_the_one_under_way(
    app: HubApp, consumer: Any, signal: str, tmp_path: Path
) -> None:
    world = World()
    commits: list[list[str]] = []

    async def force_commit(*_args: Any, **_kw: Any) -> bool:
        commits.append(list(world.acked))
        return True

    consumer.force_commit = force_commit
    lifecycle.install(
        app,
        cast(Any, SimpleNamespace(rebalance_timeout=60.0, session_timeout=30.0, data_dir=tmp_path)),
        bootstrap="127.0.0.1:9",
        state=cast(Any, SimpleNamespace(stopping=False)),
        metrics=cast(Any, None),
        watch=cast(Any, None),
        sinks=[],
        pipeline=world.pipeline,
        loop=cast(Any, SimpleNamespace(handed_over=_set_event())),
        intake=Intake(limit=8),
    )
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    under_way: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    consumer._commit_fut = under_way  # the periodic commit began: e1 not acked yet
    sending = asyncio.ensure_future(getattr(app, signal).send())
    world.ok("a1")
    await settle()
    world.ok("d1")
    await settle()
    assert world.acked == ["e1"]
    consumer._commit_fut = None  # the periodic commit ends, as faust's commit does
    under_way.set_result(None)
    await asyncio.wait_for(sending, timeout=10)
    assert commits == [["e1"]]  # committed after e1's ack: its next owner does not route it


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


class _Record:
    """A fetched record, as much of one as the fetch loop reads (faust tracks it weakly)."""

    def __init__(self, tp: TP, offset: int) -> None:
        self.tp = tp
        self.topic = tp.topic
        self.offset = offset
        self.acked = False


async def test_a_record_yielded_before_a_rebalance_that_began_in_the_fetch_loops_commit_goes() -> (
    None
):
    # the fetch loop commits every broker_commit_every acks, in the middle of handing a fetch
    # over; a rebalance that begins while it waits there (settle drops the intake) must take
    # the record in hand too: it is fetched again from the committed offset after the seek
    app = HubApp("drain-epoch", broker="kafka://127.0.0.1:9", web_enabled=False)
    intake = app.intake = Intake(limit=8)
    with _unstarted(app) as consumer:  # faust's consumer, the hub's fetch loop; no broker
        await _drop_the_record_in_hand(consumer, intake)


async def _drop_the_record_in_hand(consumer: Any, intake: Intake) -> None:
    tp = TP("hub.in", 0)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def getmany(**_kw: Any) -> Any:  # timeout=1.0
        yield tp, _Record(tp, 1)
        consumer._n_acked = consumer._commit_every  # the next record commits first
        yield tp, _Record(tp, 2)
        fetcher._stopped.set()  # the rebalance stopped the flow: this fetch yields no more

    async def commit(*_args: Any, **_kw: Any) -> bool:
        intake.discard()  # the rebalance's settle, while the commit waits for the flush
        return True

    sought: list[int] = []

    async def perform_seek() -> None:  # back to the committed offset (none yet)
        consumer._read_offset[tp] = None
        sought.append(1)
        fetcher._stopped.set()

    consumer.getmany = getmany
    consumer.commit = commit
    consumer.perform_seek = perform_seek
    consumer.assignment = lambda: {tp}
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    assert len(intake) == 0  # neither record is routed before the seek brings them back
    assert sought == [1]  # the loop sought back itself, not trusting the rest of the fetch

    async def after_the_seek(**_kw: Any) -> Any:
        yield tp, _Record(tp, 1)
        fetcher._stopped.set()

    fetcher._stopped.clear()
    consumer.getmany = after_the_seek
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    assert [r.offset for r in await intake.take(8)] == [1]


@contextlib.contextmanager
def _unstarted(app: HubApp) -> Iterator[Any]:
    """``app``'s faust consumer, never started; the event loop its thread made is closed."""
    consumer = cast(Any, app.consumer)
    try:
        yield consumer
    finally:
        consumer._thread.thread_loop.close()


class _Gate:
    """The audit gate (``AuditWatch``), opened and closed by the test."""

    def __init__(self, *, open_: bool) -> None:
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()

    @property
    def blocked(self) -> bool:
        return not self.opened.is_set()

    async def wait_open(self) -> None:
        await self.opened.wait()


def _route_loop(gate: _Gate) -> RouteLoop:
    return RouteLoop(
        router=cast(Any, None),
        seen=cast(Any, None),
        audit=cast(Any, SimpleNamespace(watch=gate)),
        pipeline=cast(Any, None),
        acks=cast(Any, None),
        position=lambda: 0,
        observe=lambda _topic, _result: None,
    )


async def test_a_batch_held_at_the_closed_audit_gate_is_dropped_by_a_rebalance() -> None:
    # the store lags: the loop has taken e1 and e2 and waits for the gate. A rebalance must
    # not wait for the store (until its time runs out) and then see them routed after the
    # partition moved: they go with the intake, fetched again from the committed offset
    gate = _Gate(open_=False)
    async with _held_at_the_gate(gate) as (loop, intake, routed):
        settled = await _settle_at_once(loop, intake)
        assert settled is True  # nothing in hand: the store's lag is not the rebalance's
        gate.opened.set()
        await settle()
        assert routed == []  # dropped: its partition may be another worker's now
        await intake.put(["e1"])  # fetched again after the seek
        await settle()
        assert routed == [["e1"]]


@contextlib.asynccontextmanager
async def _held_at_the_gate(
    gate: Any,
) -> AsyncIterator[tuple[RouteLoop, Intake, list[list[str]]]]:
    """A route loop that has taken e1 and e2 and waits at ``gate`` (as ``route_batch``)."""
    loop = _route_loop(gate)
    routed: list[list[str]] = []

    async def route_batch(events: list[str], _ack: Any) -> None:
        await gate.wait_open()  # as RouteLoop.route_batch does first
        routed.append(events)

    async def crash(_exc: BaseException) -> None:
        return None

    loop.route_batch = route_batch  # type: ignore[method-assign,assignment]
    intake = Intake(limit=8)
    await intake.put(["e1", "e2"])
    running = asyncio.ensure_future(
        loop.run(
            take=partial(intake.take, 8),
            ack=lambda _m: None,
            crash=crash,
            stopping=lambda: False,
            epoch=lambda: intake.epoch,
        )
    )
    try:
        await settle()
        assert len(intake) == 0  # taken, waiting at the gate
        yield loop, intake, routed
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _settle_at_once(loop: RouteLoop, intake: Intake) -> bool:
    """``lifecycle.settle`` with nothing in flight and a commit that does nothing."""

    async def commit() -> None:
        return None

    return await lifecycle.settle(
        intake=intake,
        handed_over=loop.handed_over,
        pipeline=World().pipeline,
        commit=commit,
        within=1.0,
    )


async def test_what_was_acked_before_a_rebalance_is_committed_by_its_settle(
    tmp_path: Path,
) -> None:
    # faust forgot a revoked partition's acknowledged offsets before the app's revoke handler
    # (and with it settle's commit) ran: up to broker_commit_interval of routed events were
    # left uncommitted and routed again by the partition's next owner (faust-streaming#502)
    app = HubApp("revoke-acked", broker="kafka://127.0.0.1:9", web_enabled=False)
    with _unstarted(app) as consumer:
        tp = TP("hub.in", 0)
        consumer._committed_offset[tp] = 10
        consumer._acked[tp].extend([10, 11, 12])  # routed, confirmed, not committed yet
        consumer._acked_index[tp].update([10, 11, 12])
        commits: list[dict[TP, int]] = []

        async def force_commit(*_args: Any, **_kw: Any) -> bool:
            commits.append(consumer._filter_committable_offsets(list(consumer._acked)))
            return True

        async def app_handler(revoked: set[TP]) -> None:  # faust's, down to its signal
            await app.on_partitions_revoked.send(revoked)

        consumer.force_commit = force_commit
        consumer._on_partitions_revoked = app_handler
        lifecycle.install(
            app,
            cast(
                Any,
                SimpleNamespace(rebalance_timeout=60.0, session_timeout=30.0, data_dir=tmp_path),
            ),
            bootstrap="127.0.0.1:9",
            state=cast(Any, SimpleNamespace(stopping=False)),
            metrics=cast(Any, None),
            watch=cast(Any, None),
            sinks=[],
            pipeline=World().pipeline,
            loop=cast(Any, SimpleNamespace(handed_over=_set_event())),
            intake=Intake(limit=8),
        )
        await asyncio.wait_for(consumer.on_partitions_revoked({tp}), timeout=10)
        assert commits == [{tp: 13}]
        assert tp not in consumer._acked  # forgotten once settled: the partition may move
        assert tp not in consumer._committed_offset


async def test_records_a_fetch_yields_after_a_rebalance_and_its_seek_are_not_kept() -> None:
    # A rebalance (discard, assignment, seek) happens entirely while the fetch loop waits on
    # its commit; the fetch it was handing over goes on yielding records from before the
    # seek. Kept, they would move read_offset past the records the seek brought back, which
    # the next fetch would then skip as already handed over: lost. The loop drops the rest
    # of that fetch and seeks again, so the next fetch hands over every record once.
    app = HubApp("drain-stale", broker="kafka://127.0.0.1:9", web_enabled=False)
    intake = app.intake = Intake(limit=8)
    tp = TP("hub.in", 0)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    with _unstarted(app) as consumer:

        async def seek_to_committed() -> None:
            consumer._read_offset[tp] = None  # nothing committed yet on this partition

        async def stale(**_kw: Any) -> Any:
            yield tp, _Record(tp, 1)
            consumer._n_acked = consumer._commit_every  # the next record commits first
            yield tp, _Record(tp, 2)
            yield tp, _Record(tp, 3)  # from the same, pre-seek fetch

        async def commit(*_args: Any, **_kw: Any) -> bool:
            intake.discard()  # the whole rebalance, while the commit waits
            await seek_to_committed()
            return True

        async def perform_seek() -> None:
            await seek_to_committed()
            consumer.getmany = fresh

        async def fresh(**_kw: Any) -> Any:
            for offset in (1, 2, 3):
                yield tp, _Record(tp, offset)
            fetcher._stopped.set()

        consumer.getmany = stale
        consumer.commit = commit
        consumer.perform_seek = perform_seek
        consumer.assignment = lambda: {tp}
        await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
        assert [r.offset for r in await intake.take(8)] == [1, 2, 3]  # each once, none lost


class _Kafka:
    """The aiokafka consumer under faust's: one partition's log and fetch position.

    The seeks and the assignment are aiokafka's own (``AIOKafkaConsumer``'s); a
    fetch returns up to ``per_fetch`` records from the position and moves it past them, as
    aiokafka's ``fetched_records`` does.
    """

    seek_to_committed = aiokafka.AIOKafkaConsumer.seek_to_committed
    seek = aiokafka.AIOKafkaConsumer.seek
    assignment = aiokafka.AIOKafkaConsumer.assignment

    def __init__(self, tp: TP, *, end: int, committed: int | None, per_fetch: int) -> None:
        self.tp = tp
        self.end = end
        self.per_fetch = per_fetch
        self.commits = {tp: committed}
        self.positions = {tp: committed or 0}  # where a new assignment starts ("earliest")
        self._subscription = SimpleNamespace(assigned_partitions=lambda: set(self.positions))
        self._fetcher = SimpleNamespace(seek_to=self.positions.__setitem__)

    async def committed(self, tp: TP) -> int | None:
        return self.commits[tp]

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    def fetch(self) -> list[_Record]:
        start = self.positions[self.tp]
        stop = min(self.end, start + self.per_fetch)
        self.positions[self.tp] = stop
        return [_Record(self.tp, offset) for offset in range(start, stop)]


def _on_kafka(consumer: Any, kafka: _Kafka) -> None:
    """``consumer``'s thread calls ``kafka`` on the test's loop (it is never started)."""

    async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    consumer._thread._consumer = kafka
    consumer._thread.call_thread = call_thread


@pytest.mark.parametrize("committed", [None, 2])
async def test_a_fetch_overtaken_by_a_rebalance_is_fetched_again_with_nothing_committed(
    committed: int | None,
) -> None:
    # The fetch loop began a fetch, which waited for the flow while a whole rebalance ran
    # (settle ended the intake's epoch); it then fetched from the new assignment and was
    # dropped, and the loop sought back to the committed offsets. aiokafka seeks only a
    # partition with a committed offset above 0 (seek_to_committed), so a partition with
    # none stayed past the dropped records: never routed, and committed past by the acks
    # of the next ones
    app = HubApp("drain-uncommitted", broker="kafka://127.0.0.1:9", web_enabled=False)
    intake = app.intake = Intake(limit=64)
    tp = TP("hub.in", 0)
    kafka = _Kafka(tp, end=6, committed=committed, per_fetch=3)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    with _unstarted(app) as consumer:
        _on_kafka(consumer, kafka)
        first = True

        async def getmany(**_kw: Any) -> Any:
            nonlocal first
            if first:  # the rebalance, while this fetch waited for the flow to resume
                first = False
                intake.discard()
                await consumer.perform_seek()  # faust's, as recovery seeks after assigning
            records = kafka.fetch()
            if not records:
                fetcher._stopped.set()
            for record in records:
                yield tp, record

        consumer.getmany = getmany
        await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
    assert [r.offset for r in await intake.take(64)] == list(range(committed or 0, 6))


async def test_a_fetch_faust_drops_when_the_flow_stopped_under_it_is_fetched_again() -> None:
    # the flow stopped (a rebalance) while a fetch was under way: faust's getmany drops the
    # fetch and seeks back to the committed offsets; with nothing committed, aiokafka left
    # the partition past the dropped records
    app = HubApp("getmany-uncommitted", broker="kafka://127.0.0.1:9", web_enabled=False)
    tp = TP("hub.in", 0)
    kafka = _Kafka(tp, end=6, committed=None, per_fetch=3)
    with _unstarted(app) as consumer:
        _on_kafka(consumer, kafka)
        consumer._set_active_tps({tp})

        async def fetch(**_kw: Any) -> dict[TP, list[_Record]]:
            records = kafka.fetch()
            consumer.stop_flow()  # the rebalance began meanwhile
            return {tp: records}

        consumer._getmany = fetch
        assert [m async for m in consumer.getmany(timeout=1.0)] == []
    assert kafka.positions[tp] == 0  # the three records are fetched again


async def test_the_fetch_loop_goes_on_when_a_rebalance_leaves_it_nothing_to_seek() -> None:
    # A fetch was overtaken by a rebalance, and by the time the loop seeks back another one
    # has left this worker no partition (more workers than partitions). aiokafka's
    # seek_to_committed asserts that some partition is assigned, so the loop tried again
    # every 0.1 s, a warning each time, for as long as the worker had none
    app = HubApp("drain-unassigned", broker="kafka://127.0.0.1:9", web_enabled=False)
    intake = app.intake = Intake(limit=8)
    tp = TP("hub.in", 0)
    kafka = _Kafka(tp, end=3, committed=None, per_fetch=3)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    fetches = 0
    with _unstarted(app) as consumer:
        _on_kafka(consumer, kafka)

        async def getmany(**_kw: Any) -> Any:
            nonlocal fetches
            fetches += 1
            if fetches == 1:
                records = kafka.fetch()
                intake.discard()  # a rebalance overtook this fetch
                kafka.positions.clear()  # and the next one took every partition away
                for record in records:
                    yield tp, record
            else:
                fetcher._stopped.set()  # fetching again: nothing assigned, nothing fetched

        consumer.getmany = getmany
        await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=5)
    assert fetches == 2
    assert len(intake) == 0


@pytest.mark.parametrize(
    ("failure", "fails_for_good"),
    [
        (aiokafka.errors.IllegalStateError("partition not assigned"), False),
        (aiokafka.errors.GroupAuthorizationFailedError(), True),
    ],
)
async def test_a_reseek_is_tried_again_while_the_assignment_moves_and_no_longer(
    failure: Exception, fails_for_good: bool
) -> None:
    # The reseek fails. While the assignment moves under it (aiokafka: IllegalStateError)
    # the next try sees the new one. Any other error (aiokafka retries the retriable ones
    # itself) comes back on every try: the loop tried again every 0.1 s for ever, holding
    # its partitions and fetching none of them. It now stops the worker, as an error from
    # a fetch does, which restarts from its committed offsets
    app = HubApp("drain-seek-fails", broker="kafka://127.0.0.1:9", web_enabled=False)
    intake = app.intake = Intake(limit=8)
    tp = TP("hub.in", 0)
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    seeks = 0
    with _unstarted(app) as consumer:

        async def getmany(**_kw: Any) -> Any:
            if seeks == 0:
                intake.discard()  # a rebalance overtook this fetch
                yield tp, _Record(tp, 1)
            else:
                fetcher._stopped.set()  # sought back: fetching again

        async def perform_seek() -> None:
            nonlocal seeks
            seeks += 1
            if fails_for_good or seeks == 1:
                raise failure

        consumer.getmany = getmany
        consumer.perform_seek = perform_seek
        consumer.assignment = lambda: {tp}
        draining = asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)
        if fails_for_good:
            with pytest.raises(type(failure)):
                await draining
            assert seeks == 1
        else:
            await draining
            assert seeks == 2


async def test_a_batch_at_an_audit_gate_that_reopens_and_closes_is_dropped_by_a_rebalance() -> None:
    # The gate is the store's lag against a clock: it opens when the store has caught up on
    # the oldest pending message, and closes again as soon as the next oldest is past the
    # limit, which can be before the route loop, woken, has run. The loop passed its gate
    # and stopped at route_batch's, holding a batch a rebalance waits for: settle waited
    # for the store until its time ran out, and the batch was routed after the partition
    # had moved (a second copy by its next owner)
    now = 0.0
    stored: set[str] = set()

    async def resend(_message: Any) -> None:
        return None

    watch = AuditWatch(
        limit=1.0, stored=lambda ids: stored & set(ids), resend=resend, clock=lambda: now
    )
    watch.decided("r1", cast(Any, None))
    now = 0.5
    watch.decided("r2", cast(Any, None))
    now = 1.2  # r1 is past the limit: the gate is closed
    async with _held_at_the_gate(watch) as (loop, intake, routed):
        stored.add("r1")
        await watch.check()  # the store has r1: r2 is 0.7 s old, the gate opens
        now = 1.6  # and r2 passes the limit before the loop has run
        await settle()
        assert routed == []  # the gate is closed again
        settled = await _settle_at_once(loop, intake)
        assert settled is True  # nothing in hand: the store's lag is not the rebalance's
        stored.add("r2")
        await watch.check()
        await settle()
        assert routed == []  # dropped: its partition may be another worker's now
