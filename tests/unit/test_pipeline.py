"""Pipelined acknowledgement (``hub.agents.pipeline``): ack only what the broker confirmed.

The broker's acknowledgements are futures, as aiokafka's producer returns them; a test
resolves or fails them on cue, which a real broker cannot be made to do deterministically
(the broker-restart integration test covers the real thing, less exactly).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from hub.agents.pipeline import Pipeline


class World:
    """A pipeline with its collaborators observable: syncs, crashes, acks."""

    def __init__(self, max_in_flight: int = 4) -> None:
        self.synced: list[int] = []
        self.crashes: list[BaseException] = []
        self.acked: list[str] = []
        self.sync_gate = asyncio.Event()
        self.sync_gate.set()
        self.sync_error: BaseException | None = None
        self.pipeline = Pipeline(max_in_flight=max_in_flight, sync=self.sync, crash=self.crash)

    async def sync(self, position: int) -> None:
        await self.sync_gate.wait()
        if self.sync_error is not None:
            raise self.sync_error
        self.synced.append(position)

    async def crash(self, exc: BaseException) -> None:
        self.crashes.append(exc)

    async def route(self, event_id: str, pending: list[asyncio.Future[Any]], written: int) -> None:
        await self.pipeline.admit()
        self.pipeline.confirm(
            pending,
            written=written,
            event_id=event_id,
            on_confirmed=lambda: self.acked.append(event_id),
        )


def futures(n: int) -> list[asyncio.Future[Any]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(n)]


async def settle() -> None:
    """Let every ready callback and task step run (no sleeping: the loop goes idle)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_event_is_acked_once_every_output_is_confirmed_and_synced() -> None:
    world = World()
    acks = futures(3)
    await world.route("evt-1", acks, written=7)
    assert not world.pipeline.idle.is_set()
    acks[0].set_result(None)
    acks[2].set_result(None)
    await settle()
    assert world.acked == []  # one output still unconfirmed
    world.sync_gate.clear()
    acks[1].set_result(None)
    await settle()
    assert world.acked == []  # on the broker, but its local files are not synced yet
    world.sync_gate.set()
    await settle()
    assert world.acked == ["evt-1"]
    assert world.synced == [7]
    assert world.pipeline.idle.is_set()
    assert world.pipeline.in_flight == 0
    assert world.crashes == []


async def test_a_failed_produce_is_never_acked_and_stops_the_worker_at_once() -> None:
    world = World()
    first, second = futures(2), futures(1)
    await world.route("evt-1", first, written=1)
    await world.route("evt-2", second, written=2)
    failure = KafkaTimeoutError("produce not acknowledged")
    first[0].set_exception(failure)
    await settle()
    # stopped now, with no further event arriving to notice it
    assert world.crashes == [failure]
    assert world.pipeline.failures == [failure]
    second[0].set_result(None)
    first[1].set_result(None)
    await settle()
    assert world.acked == ["evt-2"]  # its own outputs are confirmed; evt-1's never are
    assert world.crashes == [failure]  # crash once, whatever else fails after
    with pytest.raises(KafkaTimeoutError):
        await world.route("evt-3", futures(1), written=3)  # nothing more is routed
    assert world.pipeline.idle.is_set()


async def test_a_failed_sync_is_never_acked_either() -> None:
    world = World()
    world.sync_error = OSError(5, "syncfs failed")
    acks = futures(1)
    await world.route("evt-1", acks, written=1)
    acks[0].set_result(None)
    await settle()
    assert world.acked == []
    assert world.crashes == [world.sync_error]


async def test_the_window_holds_routing_until_an_event_is_confirmed() -> None:
    world = World(max_in_flight=1)
    acks = futures(1)
    await world.route("evt-1", acks, written=1)
    second = asyncio.ensure_future(world.route("evt-2", futures(1), written=2))
    await settle()
    assert not second.done()  # one event in flight: the next waits
    acks[0].set_result(None)
    await settle()
    assert second.done()
    assert second.exception() is None
    assert world.acked == ["evt-1"]
    assert world.pipeline.in_flight == 1


async def test_an_event_whose_routing_raised_gives_its_place_back() -> None:
    world = World(max_in_flight=1)
    await world.pipeline.admit()
    assert not world.pipeline.idle.is_set()
    world.pipeline.abandon()  # Router.route raised: nothing was handed to the producer
    assert world.pipeline.idle.is_set()
    await asyncio.wait_for(world.pipeline.admit(), timeout=5)  # room again, at once
