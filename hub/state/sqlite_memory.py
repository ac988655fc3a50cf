"""How much memory SQLite's own allocator holds in this process (page caches, statements).

Why: a worker holds a dozen SQLite connections (the seen-event store, the audit outbox, the
case keys, the registers, the audit lookups), each with a page cache that fills as its file
grows, up to its ``cache_size``. That memory is allocated by SQLite in C: neither
``tracemalloc`` nor Python's own counters see it, so a worker's resident memory growing
could not be told apart from it. ``sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`` reports it;
the worker exports it as ``hub_sqlite_memory_bytes`` and the soak benchmark samples it
(measured at 20 events/s: about 2 MiB after 2,400 events, growing 0.15 KiB an event while
the worker's resident memory grew 1.4 KiB an event: not the main part).

It is read from the SQLite library the ``sqlite3`` module is linked to, found among the
process's mapped files; where the module carries SQLite statically (no such library mapped),
the figure is unknown (None), never a count from another copy of the library.
"""

from __future__ import annotations

import ctypes
import sqlite3
from functools import cache
from pathlib import Path

__all__ = ["sqlite_memory"]

#: sqlite3.h: SQLITE_STATUS_MEMORY_USED
_MEMORY_USED = 0


@cache
def _library() -> ctypes.CDLL | None:
    """The libsqlite3 this process's ``sqlite3`` module uses, or None where it is not shared."""
    sqlite3.sqlite_version  # noqa: B018  # the module (and its library) loaded first
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.rpartition(" ")[2]
        if "/libsqlite3.so" in path:
            try:
                lib = ctypes.CDLL(path)  # already loaded: the same handle, the same counters
                lib.sqlite3_status64.argtypes = [
                    ctypes.c_int,
                    ctypes.POINTER(ctypes.c_int64),
                    ctypes.POINTER(ctypes.c_int64),
                    ctypes.c_int,
                ]
                lib.sqlite3_status64.restype = ctypes.c_int
            except (OSError, AttributeError):
                return None
            return lib
    return None


def sqlite_memory() -> int | None:
    """Bytes SQLite's allocator holds in this process now, or None where unknown."""
    lib = _library()
    if lib is None:
        return None
    current, highwater = ctypes.c_int64(), ctypes.c_int64()
    if lib.sqlite3_status64(_MEMORY_USED, ctypes.byref(current), ctypes.byref(highwater), 0):
        return None
    return int(current.value)
