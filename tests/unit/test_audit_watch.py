"""The router's watch on the store (``hub.agents.audit_watch``): pause when it lags, resend.

The store is a set of record ids the test controls, and the clock is the test's, so every
cause of lag (a dead sink, a rejoining one, a slow or refusing store) is the same here: the
store does not have what the router decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hub.agents.audit_watch import AuditWatch
from hub.envelope.wire import WireMessage


class Store:
    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.refuse = False
        self.asked: list[list[str]] = []

    def stored(self, record_ids: Sequence[str]) -> set[str]:
        self.asked.append(list(record_ids))
        if self.refuse:
            raise OSError("database is locked")
        return self.ids & set(record_ids)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(limit: float = 10.0) -> tuple[AuditWatch, Store, Clock, list[WireMessage]]:
    store, clock, resent = Store(), Clock(), []

    async def resend(message: WireMessage) -> None:
        resent.append(message)

    watch = AuditWatch(limit=limit, stored=store.stored, resend=resend, clock=clock)
    return watch, store, clock, resent


def paused(watch: AuditWatch) -> bool:
    return watch.blocked


def audit(name: str) -> WireMessage:
    return WireMessage(topic="hub.audit", key=name.encode(), value=name.encode())


async def test_the_store_confirming_a_message_clears_it() -> None:
    watch, store, _clock, _ = make()
    watch.decided("r1", audit("m1"))
    watch.decided("r2", audit("m2"))
    store.ids.add("r1")
    await watch.check()
    assert watch.pending == 1
    store.ids.add("r2")
    await watch.check()
    assert watch.pending == 0
    assert not paused(watch)


async def test_delivery_pauses_when_the_store_lags_beyond_the_limit_and_resumes() -> None:
    watch, store, clock, _ = make(limit=10.0)
    watch.decided("r1", audit("m1"))
    clock.now += 10.0
    await watch.check()
    assert not paused(watch)  # at the limit, not beyond it
    clock.now += 0.5
    await watch.check()
    assert paused(watch)
    waiting = asyncio.ensure_future(watch.wait_open())
    await asyncio.sleep(0)
    assert not waiting.done()
    store.ids.add("r1")  # the sink came back and wrote it
    await watch.check()
    await asyncio.wait_for(waiting, timeout=1)
    assert not paused(watch)


async def test_a_store_that_cannot_be_read_confirms_nothing() -> None:
    watch, store, clock, _ = make(limit=1.0)
    watch.decided("r1", audit("m1"))
    store.ids.add("r1")
    store.refuse = True
    clock.now += 2.0
    await watch.check()
    assert paused(watch)
    store.refuse = False
    await watch.check()
    assert not paused(watch)


async def test_an_overdue_message_is_produced_again_once_per_limit() -> None:
    watch, _store, clock, resent = make(limit=5.0)
    watch.decided("r1", audit("m1"))
    clock.now += 3.0
    watch.decided("r2", audit("m2"))
    clock.now += 3.0  # m1 is 6 s old, m2 3 s
    await watch.check()
    assert [m.value for m in resent] == [b"m1"]
    clock.now += 1.0
    await watch.check()
    assert [m.value for m in resent] == [b"m1"]  # not again within the limit
    clock.now += 5.0
    await watch.check()
    assert [m.value for m in resent] == [b"m1", b"m1", b"m2"]  # oldest first
    assert watch.resent == 3


async def test_the_same_record_decided_twice_is_one_pending_message() -> None:
    watch, _store, _, _ = make()
    watch.decided("r1", audit("m1"))
    watch.decided("r1", audit("m1"))  # a reprocessed batch: identical ids
    assert watch.pending == 1


async def test_confirmed_ids_are_told_so_the_outbox_forgets_them() -> None:
    store, clock = Store(), Clock()
    told: list[Sequence[str]] = []

    async def resend(message: WireMessage) -> None:
        raise AssertionError("nothing is overdue")

    watch = AuditWatch(
        limit=5.0, stored=store.stored, resend=resend, clock=clock, confirmed=told.append
    )
    watch.decided("r1", audit("m1"))
    watch.decided("r2", audit("m2"))
    store.ids |= {"r1", "r2"}
    await watch.check()
    assert told == [["r1", "r2"]]


async def test_a_new_worker_takes_over_what_the_last_left_and_resends_the_unstored() -> None:
    watch, store, _, resent = make(limit=5.0)
    store.ids.add("r1")  # stored before the old worker died; r2 never was
    watch.take_over([("r1", audit("m1")), ("r2", audit("m2"))])
    assert paused(watch)  # overdue from the start: no routing until the store has them
    await watch.check()
    assert [m.value for m in resent] == [b"m2"]
    assert watch.pending == 1
    store.ids.add("r2")
    await watch.check()
    assert not paused(watch)


async def test_stored_through_is_the_batch_before_the_oldest_one_the_store_lacks() -> None:
    watch, store, _clock, _ = make()
    assert watch.stored_through == 0  # nothing decided yet
    watch.decided("r1", audit("m1"), batch=1)
    watch.decided("r2", audit("m2"), batch=2)
    watch.decided("r3", audit("m3"), batch=3)
    assert watch.stored_through == 0
    store.ids |= {"r2", "r3"}  # the store has later batches, not batch 1
    await watch.check()
    assert watch.stored_through == 0
    store.ids.add("r1")
    await watch.check()
    assert watch.stored_through == 3  # every batch decided so far
    watch.take_over([("r0", audit("m0"))])  # an earlier worker's, not yet stored: batch 0
    watch.decided("r4", audit("m4"), batch=4)
    assert watch.stored_through == -1
