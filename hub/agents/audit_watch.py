"""The router's watch on the audit store: delivery pauses while the store lags its decisions.

The router hands every audit message to the broker before the deliveries it covers, so no
delivery reaches a recipient topic before its audit records are at least on the broker
(``hub.agents.batches``). That alone is not enough: the sink can be dead, rejoining its group,
stuck on a record, slow, or facing a store that refuses writes, and a memory-only broker
that dies takes the audit messages with it. So the router also watches the *store*, the only
place an IG officer can read: each audit message it produced stays pending here until the
store holds its records (``AuditStore.stored_ids``, on a connection of the router's own), and
when the oldest pending message is older than ``HUB_AUDIT_OUTAGE_LIMIT`` the route loop stops
taking events (X-Road's rule: no sharing without a record). Whatever the cause, the
measure is the same: what the router decided against what the store has.

A pending message older than the limit is produced again (at most once per limit): the store
ignores record ids it holds, so a repeat costs nothing, and a broker that lost its memory
gets the records back from the router that still holds them. The bytes are kept until the
store confirms, which the pause bounds: at most ``limit`` seconds of audit messages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from hub.envelope.wire import WireMessage
from hub.log import get_logger

__all__ = ["AuditWatch"]

_log = get_logger("router")

#: record ids asked of the store at a time (one indexed query)
_CHECK_BATCH = 500


@dataclass
class _Pending:
    message: WireMessage
    decided: float
    resent: float | None = None
    batch: int = 0  # the route loop's batch that decided it (0: an earlier worker's)


class AuditWatch:
    """Pending audit messages, by a record id each; the gate the route loop waits on.

    Args:
        limit: seconds the store may lag the router's oldest pending decision.
        stored: which of these record ids the store holds (blocking: run in a thread).
        resend: produce an audit message again (after the limit, when it never landed).
        clock: monotonic seconds (a test passes its own).
        confirmed: told the record ids the store now holds (blocking: run in a thread), so
            the outbox (``hub.agents.outbox``) forgets them.
    """

    def __init__(
        self,
        *,
        limit: float,
        stored: Callable[[Sequence[str]], set[str]],
        resend: Callable[[WireMessage], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        confirmed: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.limit = limit
        self._stored = stored
        self._resend = resend
        self._clock = clock
        self._confirmed = confirmed
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._last_batch = 0  # the newest batch ``decided`` was told of
        self._open = asyncio.Event()
        self._open.set()
        self._paused = False
        #: audit messages produced again because the store did not have them in time
        self.resent = 0

    # -- the router's side -------------------------------------------------------------------

    def decided(self, record_id: str, message: WireMessage, *, batch: int = 0) -> None:
        """An audit message whose records include ``record_id`` is going to the broker.

        ``batch`` is the route loop's batch number (increasing), for ``stored_through``.
        """
        if record_id not in self._pending:
            self._pending[record_id] = _Pending(message=message, decided=self._clock(), batch=batch)
        self._last_batch = max(self._last_batch, batch)

    def held(self, record_id: str) -> WireMessage | None:
        """The pending message watched by ``record_id``, if any (``AuditSide.messages``)."""
        entry = self._pending.get(record_id)
        return None if entry is None else entry.message

    @property
    def stored_through(self) -> int:
        """The newest batch the store holds every audit message of, and of each before it.

        Pending messages are in the order they were decided, so the oldest one's batch
        bounds it; none pending: every batch decided so far. What the router keeps of a
        batch up to here can be asked of the store instead (``Router.forget_stored``).
        """
        for entry in self._pending.values():
            return entry.batch - 1
        return self._last_batch

    def take_over(self, messages: Sequence[tuple[str, WireMessage]]) -> None:
        """Messages an earlier worker left unconfirmed: due for a resend at the next check.

        The next ``check`` first drops those the store already holds, then sends the rest
        again; until the store has them the route loop waits (they are overdue).
        """
        overdue = self._clock() - self.limit - 1.0
        for record_id, message in messages:
            if record_id not in self._pending:
                self._pending[record_id] = _Pending(message=message, decided=overdue)
        if messages:
            _log.warning("audit_outbox_taken_over", messages=len(messages))

    @property
    def pending(self) -> int:
        """Audit messages produced whose records the store does not hold yet."""
        return len(self._pending)

    @property
    def age(self) -> float:
        """Seconds the oldest pending audit message has waited for the store (0: none)."""
        for entry in self._pending.values():
            return max(0.0, self._clock() - entry.decided)
        return 0.0

    @property
    def blocked(self) -> bool:
        """Whether the store lags the router by more than the limit."""
        return self.age > self.limit

    async def wait_open(self) -> None:
        """Hold the route loop while the store lags by more than the limit."""
        if not self.blocked:
            return
        self._open.clear()
        if not self._paused:
            self._paused = True
            _log.error(
                "delivery_paused",
                reason="the audit store lags the router's decisions",
                pending=self.pending,
                age_s=round(self.age, 3),
                limit=self.limit,
            )
        await self._open.wait()

    # -- the store's side --------------------------------------------------------------------

    async def check(self) -> None:
        """Ask the store about the oldest pending messages; reopen, or resend, as due."""
        if self._pending:
            ids = list(itertools.islice(self._pending, _CHECK_BATCH))
            try:
                found = await asyncio.to_thread(self._stored, ids)
            except Exception as exc:  # a store we cannot read has not confirmed anything
                _log.warning("audit_position_unknown", error=type(exc).__name__, pending=len(ids))
                found = set()
            for record_id in found:
                self._pending.pop(record_id, None)
            if found and self._confirmed is not None:
                try:
                    await asyncio.to_thread(self._confirmed, sorted(found))
                except Exception as exc:  # kept a little longer: forgotten at a later check
                    _log.warning("audit_outbox_not_cleared", error=type(exc).__name__)
            await self._resend_overdue()
        if not self.blocked:
            if self._paused:
                self._paused = False
                _log.info("delivery_resumed", pending=self.pending)
            self._open.set()

    async def run(self, *, interval: float = 0.05) -> None:
        """Check every ``interval`` seconds until cancelled (a task of the worker)."""
        while True:
            await self.check()
            await asyncio.sleep(interval)

    async def _resend_overdue(self) -> None:
        now = self._clock()
        for record_id, entry in list(self._pending.items()):
            if now - entry.decided <= self.limit:
                break  # oldest first: the rest are younger
            if entry.resent is not None and now - entry.resent <= self.limit:
                continue
            entry.resent = now
            self.resent += 1
            _log.warning(
                "audit_resent", record_id=record_id, waited_s=round(now - entry.decided, 3)
            )
            try:
                await self._resend(entry.message)
            except Exception as exc:  # the broker is down too: the next check tries again
                _log.warning("audit_resend_failed", record_id=record_id, error=type(exc).__name__)
