"""Batches through the route loop: audit on the broker first, then deliveries, then the ack.

The route loop takes whatever the fetcher has ready (up to ``HUB_ROUTE_BATCH`` events),
routes it, and hands the batch's outputs over together:

1. the batch's audit records, as signed ``hub.audit`` messages, go to the producer at once;
2. only once the broker has acknowledged them are the batch's deliveries, quarantine copies
   and notices handed to the producer, so no delivery reaches a recipient topic before its
   audit record is on the broker (and ``hub.agents.audit_watch`` pauses the loop when the
   store itself lags);
3. once every delivery is acknowledged and the batch's local files are synced by the group
   commit (``hub.durable``), the batch's events are acknowledged, in offset order per
   partition (``InOrderAcks``): faust commits acknowledged offsets, and its own gap logic
   lets an un-acknowledged offset at the head of a partition pass (``_new_offset`` skips
   the check when the committed offset is ``None`` or ``0``, and is off by one otherwise),
   so the hub never acknowledges an offset while an earlier one of the same partition is
   still open.

Batches overlap: the next batch is routed while the broker acknowledges this one, up to
``max_in_flight`` events. Deliveries of a later batch are handed over only after those of the
batch before it, so events about one case reach a recipient in order.

A failure anywhere (a produce the broker refused, a sync that failed) is never acknowledged
and stops the worker at once: ``hub up`` restarts it from the last committed offset, which
the in-order acknowledgement keeps behind every unconfirmed event; the repeat is routed with
identical ids. This module holds that logic apart from faust, so a test can fail a produce
or crash in the middle of a batch on cue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.envelope.wire import WireMessage
from hub.log import get_logger

__all__ = ["BatchPipeline", "InOrderAcks", "Send", "SendMany", "Ticket"]

_log = get_logger("router")

#: hand one message to the producer; returns the future the broker's acknowledgement resolves
Send = Callable[[WireMessage], Awaitable[Awaitable[Any]]]
#: hand messages to the producer in order, as ``Send`` one by one would; returns futures
#: that are all resolved once every one of them is acknowledged (one per message or fewer)
SendMany = Callable[[Sequence[WireMessage]], Awaitable[Sequence[Awaitable[Any]]]]


@dataclass(eq=False)
class Ticket:
    """One event taken by the route loop, waiting for its outputs to be confirmed."""

    partition: Hashable
    ack: Callable[[], Any]
    done: bool = False


@dataclass
class InOrderAcks:
    """Acknowledge events in offset order per partition, whatever order batches confirm in."""

    _queues: dict[Hashable, deque[Ticket]] = field(default_factory=dict)

    def take(self, partition: Hashable, ack: Callable[[], Any]) -> Ticket:
        """Register the next event of ``partition`` (called in the order events arrive)."""
        ticket = Ticket(partition=partition, ack=ack)
        self._queues.setdefault(partition, deque()).append(ticket)
        return ticket

    def done(self, ticket: Ticket) -> int:
        """The event's outputs are confirmed: acknowledge it and every confirmed one after it.

        Returns:
            How many events were acknowledged now (0 while an earlier one is still open).
        """
        ticket.done = True
        queue = self._queues[ticket.partition]
        released = 0
        while queue and queue[0].done:
            queue.popleft().ack()
            released += 1
        if not queue:
            del self._queues[ticket.partition]
        return released

    def open(self) -> int:
        """Events taken and not yet acknowledged (confirmed or not)."""
        return sum(len(q) for q in self._queues.values())


class BatchPipeline:
    """At most ``max_in_flight`` events routed but unconfirmed; the first failure stops.

    Args:
        max_in_flight: events whose outputs may be awaiting the broker at once.
        send: hands a message to the producer (``Send``).
        send_many: hands a batch's outputs to the producer at once (``SendMany``: the
            worker's ``TrackingProducer.send_many``, without a layer of calls per record);
            ``send`` for each, in order, when not given.
        sync: waits until the group commit has synced a position (``GroupSync.wait``).
        crash: stops the worker with the failure (``faust.App.crash``).
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        send: Send,
        sync: Callable[[int], Awaitable[None]],
        crash: Callable[[BaseException], Awaitable[None]],
        send_many: SendMany | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self._window = asyncio.Semaphore(max_in_flight)
        self._send = send
        self._send_many = send_many or self._each
        self._sync = sync
        self._crash = crash
        self._in_flight: set[asyncio.Task[None]] = set()
        self._crashing: list[asyncio.Future[None]] = []  # held: the loop keeps weak references
        self._last_sent: asyncio.Future[bool] | None = None
        #: failures of confirmations, first first; any failure means the worker is stopping
        self.failures: list[BaseException] = []
        #: set while no batch is between ``admit`` and its confirmation (graceful shutdown
        #: waits for it: the events in hand are finished)
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def in_flight(self) -> int:
        """Batches routed and handed to the producer, not yet confirmed."""
        return len(self._in_flight)

    def _slots(self, events: int) -> int:
        # a batch larger than the window takes the whole window, never more (no deadlock)
        return max(1, min(events, self.max_in_flight))

    async def _each(self, messages: Sequence[WireMessage]) -> list[Awaitable[Any]]:
        return [await self._send(message) for message in messages]

    async def admit(self, events: int) -> None:
        """Before routing a batch of ``events``: wait for room in the window.

        Raises:
            BaseException: the first failed confirmation (the worker must restart from the
                last committed offset, not route on past it).
        """
        if self.failures:
            raise self.failures[0]
        for _ in range(self._slots(events)):
            await self._window.acquire()
        self.idle.clear()

    def abandon(self, events: int) -> None:
        """Routing the admitted batch raised: give its place in the window back."""
        for _ in range(self._slots(events)):
            self._window.release()
        if not self._in_flight:
            self.idle.set()

    async def submit(
        self,
        *,
        audit: Sequence[WireMessage],
        outputs: Sequence[WireMessage],
        written: int,
        events: int,
        on_confirmed: Callable[[], None],
    ) -> None:
        """Hand the batch's audit messages to the producer now; the rest once they are on it.

        ``on_confirmed`` is called once every output is acknowledged by the broker and
        ``written`` is synced; never if anything failed.

        Raises:
            Exception: the producer refused an audit message outright (the caller abandons
                the batch and the worker stops).
        """
        acks = [await self._send(message) for message in audit]
        previous = self._last_sent
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._last_sent = sent
        task = asyncio.ensure_future(
            self._confirm(acks, outputs, previous, sent, written, events, on_confirmed)
        )
        self._in_flight.add(task)
        task.add_done_callback(self._settled)

    async def _confirm(
        self,
        audit_acks: Sequence[Awaitable[Any]],
        outputs: Sequence[WireMessage],
        previous: asyncio.Future[bool] | None,
        sent: asyncio.Future[bool],
        written: int,
        events: int,
        on_confirmed: Callable[[], None],
    ) -> None:
        try:
            await asyncio.gather(*audit_acks)  # the audit records are on the broker
            if previous is not None and not await previous:
                raise RuntimeError("an earlier batch failed: its successors are not delivered")
            acks = await self._send_many(outputs)
            sent.set_result(True)
            await asyncio.gather(*acks)
            await self._sync(written)  # this batch's case keys, register rows, seen ids
        except Exception as exc:  # not on the broker or not on disk: never ack; stop
            if not sent.done():
                sent.set_result(False)
            _log.critical("delivery_not_confirmed", events=events, error=str(exc))
            self.failures.append(exc)
            if len(self.failures) == 1:
                self._crashing.append(asyncio.ensure_future(self._crash(exc)))
            return
        finally:
            for _ in range(self._slots(events)):
                self._window.release()
        on_confirmed()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not self._in_flight:
            self.idle.set()
