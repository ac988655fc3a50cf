"""Pipelined acknowledgement: route the next event while the broker confirms this one's outputs.

An event's outputs (its audit batch, its deliveries, its quarantine record) are handed to the
producer, and the router takes the next event while the broker acknowledges them. The event
is acked (faust may commit its offset) only once every output is on the broker and the
event's local files (case keys, register rows, its seen id) are synced by the group commit.
faust commits only contiguous acked offsets, so a crash re-routes whatever was not yet
confirmed, with the same ids, and repeats are recognised.

A failed confirmation is never acked and stops the worker at once, not when the next event
arrives (which may be never): the process exits, ``hub up`` restarts it, and it resumes from
the last committed offset. This class holds that logic apart from faust, so a test can
inject a failed produce without a broker that fails on cue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hub.log import get_logger

__all__ = ["Pipeline"]

_log = get_logger("router")


class Pipeline:
    """At most ``max_in_flight`` events routed but not yet confirmed; the first failure stops.

    Args:
        max_in_flight: events whose outputs may be awaiting the broker at once.
        sync: waits until the group commit has synced a position (``GroupSync.wait``).
        crash: stops the worker with the failure (``faust.App.crash``).
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        sync: Callable[[int], Awaitable[None]],
        crash: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self._window = asyncio.Semaphore(max_in_flight)
        self._sync = sync
        self._crash = crash
        self._in_flight: set[asyncio.Task[None]] = set()
        self._crashing: list[asyncio.Future[None]] = []  # held: the loop keeps weak references
        #: failures of confirmations, first first; any failure means the worker is stopping
        self.failures: list[BaseException] = []
        #: set while no event is between ``admit`` and its confirmation (graceful shutdown
        #: waits for it: the events in hand are finished)
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def in_flight(self) -> int:
        """Events routed and handed to the producer, not yet confirmed."""
        return len(self._in_flight)

    async def admit(self) -> None:
        """Before routing an event: wait for room in the window.

        Raises:
            BaseException: the first failed confirmation (the worker must restart from the
                last committed offset, not route on past it).
        """
        if self.failures:
            raise self.failures[0]
        await self._window.acquire()
        self.idle.clear()

    def abandon(self) -> None:
        """Routing the admitted event raised: give its place in the window back."""
        self._window.release()
        if not self._in_flight:
            self.idle.set()

    def confirm(
        self,
        pending: Sequence[Awaitable[Any]],
        *,
        written: int,
        event_id: str,
        on_confirmed: Callable[[], None],
    ) -> None:
        """Await ``pending`` (the broker's acks) and the sync of ``written``, then call back.

        ``on_confirmed`` acks the event; it is not called if anything failed.
        """
        task = asyncio.ensure_future(self._confirm(pending, written, event_id, on_confirmed))
        self._in_flight.add(task)
        task.add_done_callback(self._settled)

    async def _confirm(
        self,
        pending: Sequence[Awaitable[Any]],
        written: int,
        event_id: str,
        on_confirmed: Callable[[], None],
    ) -> None:
        try:
            await asyncio.gather(*pending)
            await self._sync(written)  # this event's case keys and register rows on disk
        except Exception as exc:  # not on the broker or not on disk: never ack; stop
            _log.critical("delivery_not_confirmed", event_id=event_id, error=str(exc))
            self.failures.append(exc)
            if len(self.failures) == 1:
                self._crashing.append(asyncio.ensure_future(self._crash(exc)))
            return
        finally:
            self._window.release()
        on_confirmed()

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not self._in_flight:
            self.idle.set()
