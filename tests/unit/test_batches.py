"""Batches through the route loop (``hub.agents.batches``): audit first, ack in order.

The broker's acknowledgements are futures, as aiokafka's producer returns them; a test
resolves or fails them on cue, which a real broker cannot be made to do deterministically
(the integration tests cover the real thing, less exactly).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.transport.consumer import Consumer as FaustConsumer
from intervaltree import IntervalTree

from hub.agents.batches import BatchPipeline, InOrderAcks
from hub.envelope.wire import WireMessage


def msg(topic: str, name: str) -> WireMessage:
    return WireMessage(topic=topic, key=name.encode(), value=name.encode())


class World:
    """A pipeline whose producer, sync and crash are observable and steerable."""

    def __init__(self, max_in_flight: int = 8) -> None:
        self.sent: list[str] = []  # message values, in the order handed to the producer
        self.futures: dict[str, asyncio.Future[Any]] = {}
        self.synced: list[int] = []
        self.crashes: list[BaseException] = []
        self.acked: list[str] = []
        self.sync_gate = asyncio.Event()
        self.sync_gate.set()
        self.sync_error: BaseException | None = None
        self.refuse: set[str] = set()  # values whose send raises at once
        self.acks = InOrderAcks()
        self.pipeline = BatchPipeline(
            max_in_flight=max_in_flight, send=self.send, sync=self.sync, crash=self.crash
        )

    async def send(self, message: WireMessage) -> asyncio.Future[Any]:
        name = message.value.decode()
        if name in self.refuse:
            raise ValueError(f"{name}: too large")
        self.sent.append(name)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures[name] = future
        return future

    async def sync(self, position: int) -> None:
        await self.sync_gate.wait()
        if self.sync_error is not None:
            raise self.sync_error
        self.synced.append(position)

    async def crash(self, exc: BaseException) -> None:
        self.crashes.append(exc)

    def ok(self, *names: str) -> None:
        for name in names:
            self.futures[name].set_result(None)

    async def batch(
        self,
        events: list[tuple[int, str]],
        *,
        audit: list[str],
        outputs: list[str],
        written: int = 1,
    ) -> None:
        """Route a batch of (partition, event name) with these audit and output messages."""
        await self.pipeline.admit(len(events))
        tickets = [
            (self.acks.take(partition, functools.partial(self.acked.append, name)), name)
            for partition, name in events
        ]

        def confirmed() -> None:
            for ticket, _ in tickets:
                self.acks.done(ticket)

        try:
            await self.pipeline.submit(
                audit=[msg("hub.audit", a) for a in audit],
                outputs=[msg("hub.out.x", o) for o in outputs],
                written=written,
                events=len(events),
                on_confirmed=confirmed,
            )
        except BaseException:
            self.pipeline.abandon(len(events))
            raise


async def settle() -> None:
    """Let every ready callback and task step run (no sleeping: the loop goes idle)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_deliveries_reach_the_producer_only_after_the_audit_is_on_the_broker() -> None:
    world = World()
    await world.batch([(0, "e1"), (0, "e2")], audit=["a1"], outputs=["d1", "d2", "q2"])
    await settle()
    assert world.sent == ["a1"]  # no delivery while the audit message is unacknowledged
    world.ok("a1")
    await settle()
    assert world.sent == ["a1", "d1", "d2", "q2"]
    assert world.acked == []
    world.ok("d1", "d2")
    await settle()
    assert world.acked == []  # q2 still open
    world.ok("q2")
    await settle()
    assert world.acked == ["e1", "e2"]
    assert world.synced == [1]


async def test_a_failed_audit_produce_sends_no_delivery_acks_nothing_and_stops() -> None:
    world = World()
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    await settle()
    world.futures["a1"].set_exception(KafkaTimeoutError())
    await settle()
    assert world.sent == ["a1"]
    assert world.acked == []
    assert len(world.crashes) == 1
    with pytest.raises(KafkaTimeoutError):
        await world.pipeline.admit(1)


async def test_a_failed_delivery_is_never_acked_and_stops_the_worker_at_once() -> None:
    world = World()
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1", "d2"])
    world.ok("a1")
    await settle()
    world.ok("d1")
    world.futures["d2"].set_exception(KafkaTimeoutError())
    await settle()
    assert world.acked == []
    assert [type(e) for e in world.crashes] == [KafkaTimeoutError]


async def test_a_refused_output_is_never_acked_either() -> None:
    world = World()
    world.refuse.add("q1")  # e.g. the broker's size limit, raised by send() itself
    await world.batch([(0, "e1")], audit=["a1"], outputs=["q1"])
    world.ok("a1")
    await settle()
    assert world.acked == []
    assert [type(e) for e in world.crashes] == [ValueError]


async def test_a_failed_sync_is_never_acked() -> None:
    world = World()
    world.sync_error = OSError("disk full")
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    world.ok("a1")
    await settle()
    world.ok("d1")
    await settle()
    assert world.acked == []
    assert [type(e) for e in world.crashes] == [OSError]


async def test_events_are_acked_in_offset_order_whatever_order_batches_confirm_in() -> None:
    world = World()
    await world.batch([(0, "e1"), (1, "f1")], audit=["a1"], outputs=["d1"])
    await world.batch([(0, "e2"), (1, "f2")], audit=["a2"], outputs=["d2"])
    world.ok("a2")  # the second batch's audit lands first ...
    await settle()
    assert world.sent == ["a1", "a2"]  # ... but its deliveries wait for the first batch's
    world.ok("a1")
    await settle()
    assert world.sent == ["a1", "a2", "d1", "d2"]
    world.ok("d2")  # the second batch is confirmed first
    await settle()
    assert world.acked == []  # e2 and f2 wait behind e1 and f1, the heads of their partitions
    world.ok("d1")
    await settle()
    assert world.acked == ["e1", "e2", "f1", "f2"]


async def test_a_crash_in_the_middle_leaves_every_later_offset_of_its_partitions_open() -> None:
    """The head-of-queue failure: a failed batch is never passed by a later confirmed one."""
    world = World()
    await world.batch([(0, "e1"), (1, "f1")], audit=["a1"], outputs=["d1"])
    await world.batch([(0, "e2"), (2, "g1")], audit=["a2"], outputs=["d2"])
    world.ok("a1")
    await settle()
    world.futures["d1"].set_exception(KafkaTimeoutError())  # the first batch fails
    world.ok("a2")
    await settle()
    world.ok("d2")  # the second batch is confirmed in full
    await settle()
    # e2 sits behind the failed e1 on partition 0: never acked, so never committed; g1
    # heads its own partition and every output of it is confirmed
    assert world.acked == ["g1"]
    assert len(world.crashes) == 1


async def test_a_batch_after_one_that_never_delivered_sends_nothing() -> None:
    world = World()
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    await world.batch([(1, "f1")], audit=["a2"], outputs=["d2"])
    world.futures["a1"].set_exception(KafkaTimeoutError())  # the first never reaches delivery
    world.ok("a2")
    await settle()
    assert world.sent == ["a1", "a2"]  # d2 is not handed over ahead of d1 (case order)
    assert world.acked == []


async def test_a_later_batch_on_other_partitions_is_acked_while_an_earlier_one_waits() -> None:
    world = World()
    await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    await world.batch([(1, "f1")], audit=["a2"], outputs=["d2"])
    world.ok("a1", "a2")
    await settle()
    world.ok("d2")
    await settle()
    assert world.acked == ["f1"]  # another partition: nothing of partition 0 is passed
    world.ok("d1")
    await settle()
    assert world.acked == ["f1", "e1"]


async def test_the_window_holds_routing_until_events_are_confirmed() -> None:
    world = World(max_in_flight=2)
    await world.batch([(0, "e1"), (0, "e2")], audit=["a1"], outputs=["d1"])
    third = asyncio.ensure_future(world.pipeline.admit(1))
    await settle()
    assert not third.done()
    world.ok("a1")
    await settle()
    world.ok("d1")
    await settle()
    assert third.done()
    world.pipeline.abandon(1)


async def test_a_batch_larger_than_the_window_takes_the_whole_window() -> None:
    world = World(max_in_flight=2)
    await world.batch([(0, f"e{i}") for i in range(5)], audit=["a1"], outputs=[])
    world.ok("a1")
    await settle()
    assert world.acked == [f"e{i}" for i in range(5)]
    assert world.pipeline.idle.is_set()


async def test_a_batch_whose_audit_send_raised_gives_its_place_back() -> None:
    world = World(max_in_flight=1)
    world.refuse.add("a1")
    with pytest.raises(ValueError, match="too large"):
        await world.batch([(0, "e1")], audit=["a1"], outputs=["d1"])
    await asyncio.wait_for(world.pipeline.admit(1), timeout=1)  # the window is free again
    assert world.sent == []


# -- faust's commit and the head of a partition ---------------------------------------------


class _FaustAcks:
    """The state faust's ``Consumer._new_offset`` reads: acked offsets, gaps, last commit."""

    def __init__(self, committed: int | None) -> None:
        self._acked: dict[str, list[int]] = {"tp": []}
        self._acked_index: dict[str, set[int]] = {"tp": set()}
        self._gap: dict[str, IntervalTree] = {"tp": IntervalTree()}
        self._committed_offset: dict[str, int | None] = {"tp": committed}

    def ack(self, offset: int) -> None:  # what faust's Consumer.ack records
        self._acked["tp"].append(offset)
        self._acked_index["tp"].add(offset)

    def commit_position(self) -> int | None:
        return FaustConsumer._new_offset(self, "tp")  # type: ignore[arg-type]  # duck-typed self


@pytest.mark.parametrize("committed", [None, 0, 31])
def test_faust_alone_commits_past_an_unacked_head(committed: int | None) -> None:
    """Why the hub acks in order: faust's own commit lets an open head offset pass."""
    head = committed or 0
    faust_acks = _FaustAcks(committed)
    faust_acks.ack(head + 1)  # the event after the head confirmed first; the head failed
    assert faust_acks.commit_position() == head + 2  # the head's offset would be committed


@pytest.mark.parametrize("committed", [None, 0, 31])
def test_acked_in_order_faust_never_commits_past_an_unconfirmed_event(
    committed: int | None,
) -> None:
    head = committed or 0
    faust_acks = _FaustAcks(committed)
    acks = InOrderAcks()
    tickets = [acks.take("tp", functools.partial(faust_acks.ack, head + i)) for i in range(4)]
    acks.done(tickets[1])  # confirmed out of order, the head still open (or failed)
    acks.done(tickets[3])
    assert faust_acks.commit_position() is None  # nothing to commit: the head is open
    acks.done(tickets[0])
    assert faust_acks.commit_position() == head + 2  # up to the next open event, no further


class ManyWorld(World):
    """A pipeline handing a batch's outputs over in one call (``send_many``)."""

    def __init__(self, max_in_flight: int = 8) -> None:
        super().__init__(max_in_flight)
        self.calls: list[list[str]] = []  # the outputs of each send_many call
        self.pipeline = BatchPipeline(
            max_in_flight=max_in_flight,
            send=self.send,
            send_many=self.send_many,
            sync=self.sync,
            crash=self.crash,
        )

    async def send_many(self, messages: Sequence[WireMessage]) -> list[asyncio.Future[Any]]:
        self.calls.append([m.value.decode() for m in messages])
        return [await self.send(m) for m in messages]  # a refused one raises midway


async def test_a_batch_outputs_go_to_send_many_in_one_call_after_the_audit_is_on_it() -> None:
    world = ManyWorld()
    await world.batch([(0, "e1"), (0, "e2")], audit=["a1"], outputs=["d1", "d2", "q2"])
    await world.batch([(0, "e3")], audit=["a2"], outputs=["d3"])
    await settle()
    assert world.sent == ["a1", "a2"]  # audit alone, one by one
    assert world.calls == []
    world.ok("a2")
    await settle()
    assert world.calls == []  # the second batch's deliveries wait for the first's
    world.ok("a1")
    await settle()
    assert world.calls == [["d1", "d2", "q2"], ["d3"]]
    assert world.sent == ["a1", "a2", "d1", "d2", "q2", "d3"]
    world.ok("d1", "d2", "d3")
    await settle()
    assert world.acked == []  # q2 still open, and e3 is behind e1 and e2
    world.ok("q2")
    await settle()
    assert world.acked == ["e1", "e2", "e3"]


async def test_a_send_many_failing_midway_acks_nothing_and_delivers_no_later_batch() -> None:
    """A crash in the middle of a batch's hand-over: what was handed over is left unacked."""
    world = ManyWorld()
    world.refuse.add("d2")  # the second output of the batch is refused by the producer
    await world.batch([(0, "e1"), (0, "e2")], audit=["a1"], outputs=["d1", "d2", "d3"])
    await world.batch([(0, "e3")], audit=["a2"], outputs=["d4"])
    world.ok("a1", "a2")
    await settle()
    assert world.sent == ["a1", "a2", "d1"]  # the rest of the batch and the next: never sent
    world.ok("d1")
    await settle()
    assert world.acked == []
    assert [type(e) for e in world.crashes] == [ValueError]
    with pytest.raises(ValueError, match="too large"):
        await world.pipeline.admit(1)
