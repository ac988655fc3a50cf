"""Group commit for the router's local files: write now, fsync once for many events.

The router writes a little local state while it routes (a new case key, a row in the
flag or ban register). An fsync per write cost about a third of its time and blocked the
event loop. Durability is only needed before an event is *acknowledged* (its offset may
then be committed and the event is never routed again), and the router already waits for
the broker before it acks. So writers mark what they left unsynced here, and the ack path
calls ``sync_to`` in a thread: one round of fsyncs covers every write made before it, for as
many events as are in flight.

A crash before the sync loses nothing an agency relies on: the event was not acked, so it is
routed again (same ids), and the page cache survives a process crash anyway; only a machine
crash can lose an unsynced write, and then the event is re-routed.

On Linux a round is one ``syncfs(2)`` per filesystem written to (measured here: about 8 ms
for 500 new files, against 440 µs for each file's own fsync); elsewhere each writer fsyncs
its own files.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["GroupSync"]


class GroupSync:
    """Positions of unsynced writes, and one sync that covers them all.

    ``dirty`` is called by writers on the event loop thread; ``sync_to`` runs in a worker
    thread. A caller of ``sync_to(p)`` returns only once every write up to position ``p`` is
    on disk: if another thread's sync is under way it waits for it, then syncs what remains.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held for a whole round of fsyncs
        self._state = threading.Lock()  # guards the counters and the dirty set
        self._written = 0
        self._synced = 0
        self._dirty: dict[int, tuple[Callable[[], None], Path | None]] = {}
        self._round: asyncio.Future[None] | None = None

    @property
    def whole_filesystem(self) -> bool:
        """Whether a round syncs whole filesystems (writers need not list their files)."""
        return _LIBC is not None

    async def wait(self, position: int) -> None:
        """Return once every write up to ``position`` is durable; for the event loop.

        One round runs at a time, in a worker thread; every event waiting joins the round
        under way or the next one, so a burst of acks costs one round, not one each.

        Raises:
            OSError: the round failed (the caller must not acknowledge).
        """
        while self._synced < position:
            if self._round is None or self._round.done():
                self._round = asyncio.ensure_future(asyncio.to_thread(self.sync_to, self._written))
            await asyncio.shield(self._round)

    @property
    def position(self) -> int:
        """The position of the latest write; an event routed now needs ``sync_to`` this."""
        return self._written

    @property
    def synced(self) -> int:
        """Every write up to here is on disk."""
        return self._synced

    def dirty(self, sync: Callable[[], None], where: Path | None) -> None:
        """Record one unsynced write under directory ``where``.

        ``sync`` (the writer's bound method) makes its own writes durable where the
        filesystem cannot be synced whole. ``where`` None: not a local file (a PostgreSQL
        store, ``hub.workflows.pg_state``): every round calls ``sync``.
        """
        with self._state:
            self._written += 1
            self._dirty[_key(sync)] = (sync, where)

    def sync_to(self, position: int) -> None:
        """Make every write up to ``position`` durable (blocking: call it off the loop).

        Raises:
            OSError: a file could not be synced; nothing after ``synced`` is claimed.
        """
        if self._synced >= position:
            return
        with self._lock:
            if self._synced >= position:  # another thread's round covered it
                return
            with self._state:
                target = self._written
                writers = list(self._dirty.values())
                self._dirty.clear()
            try:
                _sync_round(writers)
            except BaseException:
                with self._state:  # try these again in the next round
                    for sync, where in writers:
                        self._dirty.setdefault(_key(sync), (sync, where))
                raise
            self._synced = target


def _sync_round(writers: Sequence[tuple[Callable[[], None], Path | None]]) -> None:
    """One syncfs per filesystem where the OS has it, else every writer's own fsyncs."""
    devices: dict[int, Path] = {}
    for sync, where in writers:
        if where is None:  # a database server's commit: only its own sync makes it durable
            sync()
            continue
        device = os.stat(where).st_dev
        if device in devices:
            continue
        if _syncfs(where):
            devices[device] = where
        else:
            sync()


def _syncfs(where: Path) -> bool:
    """``syncfs(2)`` on the filesystem holding ``where``; False where there is none."""
    if _LIBC is None:
        return False
    fd = os.open(where, os.O_RDONLY)
    try:
        if _LIBC.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs {where}: {os.strerror(errno)}")
    finally:
        os.close(fd)
    return True


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "syncfs") else None


_LIBC = _load_libc()


def _key(sync: Callable[[], None]) -> int:
    """One entry per writer: a bound method is a new object on every attribute access."""
    return id(getattr(sync, "__self__", sync))
