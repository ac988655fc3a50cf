"""How much memory SQLite's own allocator holds in this process (page caches, statements).

Why: a worker holds a dozen SQLite connections (the seen-event store, the audit outbox, the
case keys, the registers, the audit lookups), each with a page cache that fills as its file
grows, up to its ``cache_size``. That memory is allocated by SQLite in C: neither
``tracemalloc`` nor Python's own counters see it, so a worker's resident memory growing
could not be told apart from it. ``sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`` reports it;
the worker exports it as ``hub_sqlite_memory_bytes`` and the soak benchmark samples it
(measured at 20 events/s: about 2 MiB after 2,400 events, growing 0.15 KiB an event while
the worker's resident memory grew 1.4 KiB an event: not the main part).

It is read from the SQLite library the ``sqlite3`` module is linked to: the symbol is looked
up through the module's own handle (``dlsym`` searches the module, then the libraries it
was linked with), not found by name among the process's mapped files, where another copy of
libsqlite3 that something else loaded (mapped below the module's, so listed first) answered
with its own counters: 0 while the module's page caches held megabytes. Where the module
carries SQLite statically without exporting it, the figure is unknown (None), never a count
from another copy of the library.
"""

from __future__ import annotations

import _sqlite3
import ctypes
from functools import cache
from typing import Any

__all__ = ["sqlite_memory"]

#: sqlite3.h: SQLITE_STATUS_MEMORY_USED
_MEMORY_USED = 0


@cache
def _status64() -> Any | None:
    """``sqlite3_status64`` of the SQLite the ``sqlite3`` module uses, or None where unknown."""
    module = getattr(_sqlite3, "__file__", None)  # None: built into the interpreter
    if module is None:
        return None
    try:
        # already loaded: the same handle; its symbols are the module's and its libraries'
        status64 = ctypes.CDLL(module).sqlite3_status64
    except (OSError, AttributeError):
        return None
    status64.argtypes = [
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_int64),
        ctypes.c_int,
    ]
    status64.restype = ctypes.c_int
    return status64


def sqlite_memory() -> int | None:
    """Bytes SQLite's allocator holds in this process now, or None where unknown."""
    status64 = _status64()
    if status64 is None:
        return None
    current, highwater = ctypes.c_int64(), ctypes.c_int64()
    if status64(_MEMORY_USED, ctypes.byref(current), ctypes.byref(highwater), 0):
        return None
    return int(current.value)
