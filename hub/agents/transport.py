"""faust's Kafka transport: the hub's fetch wait (``hub.broker.fetch``), a tracking producer.

faust 0.15 builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. On the embedded broker that is up to 1.5 s on every event before the router even
sees it (``hub.broker.fetch``). ``HubApp`` is ``faust.App`` with this transport; nothing
else differs, except that building the transport installs the hub's decode guard
(``hub.broker.decode_guard``): a record aiokafka cannot decode reaches the router marked, to
be quarantined, instead of crashing the worker's fetcher. The guard is process-wide, so it
covers the audit sink's consumer in the same worker too.

Its producer also tracks, in its client's metadata, every topic it sends to
(``TrackingProducer``). aiokafka 0.14 forgets a topic it learnt of from a metadata answer
for all topics, and a linger lets that strand a record for good:

- ``AIOKafkaClient._wait_on_metadata`` (aiokafka/client.py:501-503) returns at once for a
  topic the cluster metadata already holds, without ``add_topic`` (line 506). While no
  topic is tracked, metadata requests name none and the broker lists every topic (client.py
  lines 220 and 286), so a topic that existed when the producer started is never tracked.
- Once any topic is tracked (the first send to a topic made after the producer started),
  every metadata update asks for the tracked topics only (client.py:257-260), and
  ``ClusterMetadata.update_metadata`` replaces the partition map with the answer
  (aiokafka/cluster.py:274): the untracked topics vanish from it, leader and all.
- A record for such a topic already in the accumulator then has no leader.
  ``drain_by_nodes`` (aiokafka/producer/message_accumulator.py:480-492) keeps its batch and
  the sender waits for a metadata update (producer/sender.py:155-159) that never names the
  topic, until the batch expires after ``request_timeout_ms`` (faust: 1,200 s). It is sent
  only when another record for that topic arrives, which makes ``_wait_on_metadata`` track
  it.
- The linger opens the window: without one the sender drains a batch in the loop turn after
  it is made, before a metadata answer can land; with ``linger_ms`` the batch waits that
  long in the accumulator (message_accumulator.py:496-503). A record to a topic the cluster
  metadata lacks (created after the producer started) sent in that window makes the update
  that strands it: the hub saw a ban's expiry notices held in the worker for over a minute
  with a 5 ms linger, and ran without one since.

``tests/integration/test_producer_linger.py`` reproduces it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import aiokafka
import faust
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.structs import TopicPartition
from faust.tables.manager import TableManager
from faust.transport.consumer import CONSUMER_PARTITIONS_REVOKED, ensure_TP
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.utils.tracing import traced_from_parent_span
from mode import Service

from hub.agents.intake import Intake
from hub.broker import decode_guard
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.lost_log import Beyond, LostLogWatch, rewind_lost_logs
from hub.envelope.wire import WireMessage
from hub.log import get_logger

__all__ = ["HubApp", "KeptHashPartitioner", "TrackingProducer"]

_log = get_logger("router")

#: what a seek raises when the assignment changes under it (aiokafka's seek_to_committed:
#: a partition no longer assigned, or none at all). Any other error comes back on every try
#: (aiokafka retries the retriable ones itself), so it stops the worker, as an error from a
#: fetch does: tried again for ever, the loop would hold its partitions and fetch none
_ASSIGNMENT_MOVING = (aiokafka.errors.IllegalStateError, AssertionError)


#: keys whose hash ``KeptHashPartitioner`` keeps; past this many it starts again (a
#: batch's keys are a few hundred at most)
_KEPT_HASHES = 4096


class KeptHashPartitioner:
    """aiokafka's ``DefaultPartitioner`` with each key's murmur2 hash kept: same partitions.

    An event's deliveries all carry the event's key (one record per recipient) and one
    case's events share theirs, and aiokafka's murmur2 is pure Python (about 5 us a key):
    it ran once per record, the same key several times an event. The hash is kept per key
    bytes; the partition is worked out from it as aiokafka does (``& 0x7FFFFFFF``, modulo
    the topic's partitions, which may change). A record without a key, or a key that is not
    ``bytes``, goes to ``DefaultPartitioner`` as it always did (a random partition).
    """

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}
        #: one for every record it takes: it keeps no state (its ``__call__`` is a classmethod)
        self._default = DefaultPartitioner()

    def __call__(self, key: Any, all_partitions: list[int], available: list[int]) -> int:
        """The partition for ``key`` among ``all_partitions`` (aiokafka's partitioner call)."""
        if type(key) is not bytes:
            return int(self._default(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= _KEPT_HASHES:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class TrackingProducer(aiokafka.AIOKafkaProducer):  # type: ignore[misc]  # aiokafka is untyped
    """``AIOKafkaProducer`` that keeps every topic it sends to in its metadata updates.

    ``add_topic`` before the first record for a topic: the client then names the topic in
    every later metadata request, so an update can never leave a record of this producer
    without a leader (see the module docstring). The first call per topic costs one metadata
    request, later calls a set lookup.

    aiokafka's default partitioner (faust passes it) is swapped for ``KeptHashPartitioner``,
    which gives the same partitions; one configured otherwise is kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if type(kwargs.get("partitioner")) is DefaultPartitioner:
            kwargs["partitioner"] = KeptHashPartitioner()
        super().__init__(*args, **kwargs)
        self._tracked: set[str] = set()

    def _track(self, topic: str) -> None:
        if topic not in self._tracked:
            self.client.add_topic(topic)
            self._tracked.add(topic)

    def _landed(self, answered: object, ready: set[str]) -> object:
        """The cluster's partition map now; ``ready`` emptied if an update replaced ``answered``.

        ``send_many``'s check that a metadata update landed while it awaited: each update
        replaces the map (never changes it), so identity says whether one did.
        """
        partitions = self._metadata._partitions
        if partitions is not answered:
            ready.clear()
        return partitions

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
        """``AIOKafkaProducer.send``, the topic tracked first."""
        self._track(topic)
        return await super().send(topic, *args, **kwargs)

    async def send_many(self, messages: Sequence[WireMessage]) -> list[asyncio.Future[Any]]:
        """``send`` each message, in order; futures that resolve once all are on the broker.

        What ``send`` does for a record, without its per-record layers: faust's
        ``Producer.send`` (a signal no one in the hub listens to, a headers check) and
        aiokafka's metadata wait, asked once per topic of the call and again after a metadata
        update lands (it only waits while the topic is unknown; tracked first, the topic
        stays known unless an update answers it with an error). Serialising (the size
        check) and the partition (``_partition``: the configured partitioner over the
        topic's partitions now) are aiokafka's own, so each record goes where ``send`` puts
        it, in the same order per partition.

        A record that fits the partition's open batch (the accumulator's last, not yet
        drained) is appended to it as ``add_message`` would, but without a future of its
        own: the batch's future, which aiokafka resolves or fails with the batch (as it does
        every record future of it), stands for it. Otherwise (no open batch, a full one, a
        closed or failed accumulator) ``add_message`` takes it: a new batch, a wait while
        the full one drains, the error. One future per batch touched, not one per record:
        aiokafka made, resolved and gathered a future and a ``RecordMetadata`` per record.
        """
        if self._txn_manager is not None and self._txn_manager.transactional_id is not None:
            return [
                await self.send(m.topic, m.value, key=m.key, headers=m.headers) for m in messages
            ]
        futures: dict[int, tuple[asyncio.Future[Any], asyncio.Future[Any]]] = {}
        # topics asked for since the last metadata update: an update landing while this
        # awaits (a metadata wait, a full batch draining) drops a topic it answers with an
        # error from the cluster metadata, and ``send`` would wait for it again (per record)
        ready: set[str] = set()
        answered = self._metadata._partitions  # replaced, never changed, by each update
        timeout = self._request_timeout_ms / 1000
        accumulator = self._message_accumulator
        for message in messages:
            topic = message.topic
            if topic not in ready:
                self._track(topic)
                await self.client._wait_on_metadata(topic)
                answered = self._landed(answered, ready)
                ready.add(topic)
            headers = message.headers or []
            key, value = self._serialize(message.key, message.value, headers)
            tp = TopicPartition(
                topic, self._partition(topic, None, message.key, message.value, key, value)
            )
            pending = accumulator._batches.get(tp)
            if pending and not accumulator._closed and accumulator._exception is None:
                batch = pending[-1]
                if (
                    batch._builder.append(timestamp=None, key=key, value=value, headers=headers)
                    is not None
                ):
                    # shielded, as aiokafka's send_batch returns it: cancelling a waiter
                    # must not cancel the batch's own future
                    if id(batch.future) not in futures:
                        futures[id(batch.future)] = (batch.future, asyncio.shield(batch.future))
                    continue
            future = await accumulator.add_message(tp, key, value, timeout, headers=headers)
            futures[id(future)] = (future, future)
            answered = self._landed(answered, ready)
        # keyed by the id of a future held here (its id cannot be reused meanwhile)
        return [waiter for _, waiter in futures.values()]

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        """``AIOKafkaProducer.send_batch``, the topic tracked first."""
        self._track(topic)
        return await super().send_batch(batch, topic, partition=partition)


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher at start(); faust passed 1500 to the constructor
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


async def _rewind(consumer: Any, watch: LostLogWatch) -> dict[Any, Beyond]:
    """``rewind_lost_logs`` as the consumer thread's ``call_thread`` runs it (a coroutine).

    The look and the seek are one step in the thread that owns the aiokafka consumer: from
    the fetch loop's thread, a seek raced the consumer's own loop, and a rebalance there
    between the look and the seek made it raise (``IllegalStateError``), ending the loop.
    """
    return rewind_lost_logs(consumer, watch, log=_log)


class _Consumer(driver.Consumer):
    """faust's consumer; with an ``Intake`` installed, each fetch is handed over whole.

    ``_drain_messages`` is faust's fetch loop (faust/transport/consumer.py) with one change:
    the records of one ``getmany`` go to ``intake`` as one list, instead of one
    ``wait_first(callback(message))`` per record (``hub.agents.intake`` says why). Everything
    else is faust's, in faust's order: the offset-gap bookkeeping, the commit every
    ``broker_commit_every`` acks, ``track_message`` before hand-over (so a graceful shutdown
    and a rebalance see the records as unacknowledged), the read offset, and abandoning the
    hand-over when a rebalance suspends the flow. A fetch that a rebalance overtook is not
    handed over at all (``Intake.epoch``).
    """

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _rewind_lost_logs(self, watch: LostLogWatch) -> None:
        """Seek each partition found past its log's end back to its start (``lost_log``).

        Its offset bookkeeping is dropped as a revoke drops it: the committed offset faust
        holds is the lost log's, and acknowledgements below it would never be committed.
        The records of the lost log still in the route loop (the audit gate may hold them
        past the grace period) are marked acknowledged, so their acknowledgements, at offsets
        the new log has not routed yet, count for nothing: counted, a commit passed the new
        log's records below them before they were routed (lost if the worker then died or
        the partition moved). They are routed all the same; they were fetched once only.
        """
        thread = self._thread
        lost = await thread.call_thread(_rewind, thread._ensure_consumer(), watch)
        if not lost:
            return
        # a commit under way took its offsets from the lost log's acknowledgements: let it
        # end before the bookkeeping is dropped, or it would put them back afterwards
        while self._commit_fut is not None:
            await self.maybe_wait_for_commit_to_finish()
        rewound = {ensure_TP(partition) for partition in lost}
        for tp in rewound:
            self._gap.pop(tp, None)
            self._acked.pop(tp, None)
            self._acked_index.pop(tp, None)
            self._committed_offset.pop(tp, None)
            self._read_offset[tp] = None  # as faust's seek to 0: everything is read again
        for message in list(self._unacked_messages):
            if message.tp in rewound and not message.acked:
                message.acked = True  # faust's ack ignores it from now on
                self._unacked_messages.discard(message)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """faust's, except that a partition with nothing committed goes back to its start.

        aiokafka's ``seek_to_committed`` seeks only a partition whose committed offset is
        above 0 (aiokafka/consumer/consumer.py), so one with none stayed where the fetcher
        had read to: the records of a fetch dropped after it (the fetch loop's reseek below,
        faust's ``getmany`` when the flow stopped under it) were never fetched again, and
        the acks of the next ones committed past them. Offset 0 is where the hub's
        ``consumer_auto_offset_reset="earliest"`` starts such a partition; a log that no
        longer begins there is reset to its earliest by aiokafka.
        """
        committed = await super().seek_to_committed()
        unsought = {ensure_TP(tp): 0 for tp, offset in committed.items() if not offset}
        if unsought:
            await self.seek_wait(unsought)
        return committed

    @Service.transitions_to(CONSUMER_PARTITIONS_REVOKED)
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """faust's, except that it forgets the revoked partitions' offsets after the app's handler.

        faust (transport/consumer.py) drops their acknowledged offsets, committed offsets and
        gaps first, then runs the app's handler, which settles and commits
        (``hub.agents.lifecycle.settle``): that commit found nothing of what had been
        acknowledged before the rebalance and not yet committed (up to
        ``broker_commit_interval`` of routed events), so the partition's next owner routed it
        all again (faust-streaming/faust#502). Kept until the handler is done, it is committed.
        """
        span = self.app._start_span_from_rebalancing("on_partitions_revoked")
        traced = traced_from_parent_span(span)
        with span:
            if self._active_partitions is not None:
                self._active_partitions.difference_update(revoked)
            self._paused_partitions.difference_update(revoked)
            try:
                await traced(self._on_partitions_revoked, partitions=revoked)(revoked)
            finally:
                for tp in revoked:  # as faust: the partition may be another worker's now
                    self._gap.pop(tp, None)
                    self._acked.pop(tp, None)
                    self._acked_index.pop(tp, None)
                    self._read_offset.pop(tp, None)
                    self._committed_offset.pop(tp, None)

    async def _drain_messages(self, fetcher: Any) -> None:
        intake = getattr(self.app, "intake", None)
        if intake is None:
            await super()._drain_messages(fetcher)
            return
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        watch = LostLogWatch(grace=getattr(self.app, "lost_log_grace", None))
        reseek = False
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if reseek:
                    # a rebalance overtook a fetch, which was dropped: back to the committed
                    # offsets, so none of what it held is skipped (see below). With nothing
                    # assigned (a later rebalance took every partition) there is nothing to
                    # seek, and aiokafka's seek_to_committed would fail until there is: a
                    # partition assigned later starts from its committed offset anyway
                    try:
                        if self.assignment():
                            await self.perform_seek()
                    except _ASSIGNMENT_MOVING as exc:  # the next try sees the new one
                        _log.warning("fetch_reseek_failed", error=type(exc).__name__)
                        await self.sleep(0.1)
                        continue
                    reseek = False
                fetched: list[Any] = []
                # A fetch a rebalance overtook (``Intake.discard`` ends the epoch) is dropped
                # whole and the partitions sought back to their committed offsets: what it
                # yields after that point may come from before the rebalance's own seek, and
                # handing it over would move ``read_offset`` past records the seek brought
                # back, which would then be skipped as already handed over (lost until the
                # next seek). Nothing dropped was acked, so nothing is lost; a record in the
                # route loop may be routed twice.
                epoch = intake.epoch
                await self.sleep(0)  # as faust: getmany can return at once, loop after loop
                if self.should_stop:
                    break
                records: Any = self.getmany(timeout=1.0)  # an async generator
                try:
                    async for tp, message in records:
                        if intake.epoch != epoch:
                            reseek = True
                            break
                        offset = message.offset
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue  # already handed over (faust drops these the same way)
                        if offset - (r_offset or 0) > 1 and r_offset:
                            if acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        self.track_message(message)
                        if intake.epoch != epoch:  # a rebalance began during the commit
                            reseek = True
                            break
                        fetched.append(message)
                        read_offset[tp] = offset
                finally:
                    await records.aclose()
                if reseek:
                    continue
                if fetched:
                    await self.wait_first(
                        intake.put(fetched, epoch=epoch), self.suspend_flow.wait()
                    )
                if watch.due() and self.assignment():  # once a second, busy or idle
                    await self._rewind_lost_logs(watch)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class _Producer(driver.Producer):
    @property
    def _producer_type(self) -> type[aiokafka.AIOKafkaProducer]:
        return TrackingProducer


class _Transport(driver.Transport):
    Consumer = _Consumer
    Producer = _Producer


class _TableManager(TableManager):
    """faust's table manager without the second it sleeps at start for tables to register.

    faust waits that second so tables declared after the app starts still make it in; the
    hub declares none (its state is in SQLite and the broker), and the conductor waits for
    this manager before it subscribes, so every worker joined its group a second late.
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class HubApp(faust.App):
    """``faust.App``: its consumer waits at most ``FETCH_WAIT_MS``; a ``TrackingProducer``.

    With ``intake`` set before the worker starts, the consumer hands each fetch to it whole
    instead of delivering records to agents one by one (``_Consumer``). Its table manager
    starts at once (``_TableManager``).
    """

    #: where the consumer hands fetched records, when the route loop takes them in batches
    intake: Intake | None = None
    #: seconds a partition may stay past its log's end before the fetch loop reads it again
    #: from its start (``HubSettings.lost_log_grace``; None: no watch, ``hub.broker.lost_log``)
    lost_log_grace: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("TableManager", _TableManager)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        decode_guard.install()  # before the consumer's first fetch
        return _Transport(self.conf.broker_consumer, self)
