"""Give freed heap memory back to the operating system now and then (glibc ``malloc_trim``).

A worker allocates and frees many small buffers for every event, on several threads (the
event loop, the audit sink, the group commit, SQLite). glibc keeps freed memory in its
arenas and hands it back to the system only from the top of each heap, so under steady load
a worker's RSS creeps upward while the memory it actually uses stays flat. Measured with the
router in one process: Python's own objects stayed flat (tracemalloc) while RSS grew by
about 100 bytes an event, and one ``malloc_trim(0)`` gave back 7 MiB of freed memory.
``malloc_trim(0)`` releases the free pages of every arena. It costs a few milliseconds and
runs in a thread. Where the C library has none (musl, macOS), nothing is done.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["TRIM_INTERVAL_S", "can_trim", "trim"]

#: seconds between trims in a worker
TRIM_INTERVAL_S = 60.0


def _load() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_LIBC = _load()


def can_trim() -> bool:
    """Whether this C library can give freed memory back (glibc)."""
    return _LIBC is not None


def trim() -> bool:
    """Give freed heap memory back to the system; True if any was released."""
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))
