"""Inbound records handed from the consumer's fetch loop to the route loop, a fetch at a time.

faust delivers a fetched record to an agent one at a time: its fetch loop awaits
``wait_first(callback(message), ...)`` per record, two tasks and a trip round the event
loop each, and the agent's stream takes the record from a channel queue. The route loop
therefore found one event ready whenever it looked, and routed batches of one: each paid
a whole batch's fixed cost (an authenticated ``hub.audit`` message, an outbox row, a
group-commit sync and a producer round trip) for a single event. Measured on 3,000
scenario events (the commit that added this module): 1.0 to 1.4 events per batch, and the
route loop idle a third of the time waiting for the next record while the broker held
thousands.

``hub.agents.transport`` hands each fetch's records here as one list instead (when the
route loop has installed an ``Intake``), tracked for acknowledgement exactly as faust's
own delivery tracks them; the route loop takes whatever is ready, up to its batch size.
Acknowledgement and commit stay faust's: the route loop acks each record through the
consumer once its outputs are confirmed (``hub.agents.batches.InOrderAcks``).

A rebalance empties the queue (``discard``): after one, faust seeks every partition it
assigns back to its committed offset and fetches from there, so a record still waiting here
would be routed twice by this worker, or once here and once by the partition's new owner.
A fetch made before the rebalance and handed over after it is dropped the same way (the
``epoch`` it was fetched in has passed). Nothing is lost: a dropped record was never acked,
so the committed offset stays before it and it is fetched again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["Intake"]


class Intake:
    """A bounded queue of fetched records: whole fetches in, batches out.

    Args:
        limit: records that may wait here; the fetch loop waits while this many do, so a
            backlog on the broker stays on the broker (the worker's memory is bounded by
            ``limit`` records plus one fetch).
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = max(1, limit)
        self._records: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        #: bumped by each ``discard``: a fetch from an earlier epoch is not taken
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._records)

    async def put(self, records: Iterable[Any], *, epoch: int | None = None) -> bool:
        """Add one fetch's records, in fetch order; waits while the queue is full.

        Returns False, having added nothing, when ``epoch`` (the epoch the records were
        fetched in; default: now) is over, at the call or once there is room.
        """
        fetched_in = self.epoch if epoch is None else epoch
        while len(self._records) >= self.limit and fetched_in == self.epoch:
            self._room.clear()
            await self._room.wait()
        if fetched_in != self.epoch:
            return False
        self._records.extend(records)
        if self._records:
            self._ready.set()
        return True

    def discard(self) -> int:
        """A rebalance: drop the records waiting and end the epoch; how many were dropped."""
        self.epoch += 1
        dropped = len(self._records)
        self._records.clear()
        self._room.set()  # a put waiting for room wakes, sees the epoch over and adds nothing
        return dropped

    async def take(self, most: int) -> list[Any]:
        """The records waiting (at least one, at most ``most``), oldest first."""
        while not self._records:
            self._ready.clear()
            await self._ready.wait()
        count = min(max(1, most), len(self._records))
        taken = [self._records.popleft() for _ in range(count)]
        if len(self._records) < self.limit:
            self._room.set()
        return taken
