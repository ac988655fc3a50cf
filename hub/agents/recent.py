"""What a router delivered, kept in memory only until the audit store can answer for it.

The router asks who received an event (its acknowledgements) and who received a case's
earlier events (Art 19 corrections, access notices). The audit store answers both, but the
sink writes a little after the router decides, so the router keeps its own recent
deliveries for that gap. Kept by count alone, they filled to the count and stayed there: a
worker's memory grew by about 1 KiB per event for its first 10,000 events, whatever the
rate (``bench/results/adhoc``, the soak). Kept until the store holds the batch that put
them there (``forget_through``, driven by ``hub.agents.audit_watch.AuditWatch``), they are
as many as the store lags: a few batches at a steady rate, and the count still caps them
while the store is down (the route loop pauses after ``HUB_AUDIT_OUTAGE_LIMIT`` anyway).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Recent"]

V = TypeVar("V")


class Recent(Generic[V]):
    """Values by key, each stamped with the batch that last set it, oldest stamp first.

    Args:
        cap: the most keys kept, oldest out (a bound while the store confirms nothing).
    """

    __slots__ = ("_cap", "_items")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: OrderedDict[str, tuple[int, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> V | None:
        """The value kept for ``key``, if any."""
        held = self._items.get(key)
        return None if held is None else held[1]

    def update(self, key: str, batch: int, change: Callable[[V | None], V]) -> None:
        """Set ``key`` to ``change(its value)``, stamped ``batch`` (the newest), within the cap."""
        items = self._items
        held = items.get(key)
        items[key] = (batch, change(None if held is None else held[1]))
        items.move_to_end(key)
        while len(items) > self._cap:
            items.popitem(last=False)

    def forget_through(self, batch: int) -> int:
        """Drop every value last set in ``batch`` or before; how many were dropped.

        Stamps only grow along the order (``update`` moves a key to the end), so this stops
        at the first newer one.
        """
        items = self._items
        dropped = 0
        while items:
            stamp = next(iter(items.values()))[0]
            if stamp > batch:
                break
            items.popitem(last=False)
            dropped += 1
        return dropped
