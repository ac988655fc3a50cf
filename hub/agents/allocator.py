"""One malloc arena for a worker's threads: less of its memory lost to fragmentation.

A worker has several threads that allocate: faust's consumer thread, the thread pool that
writes audit batches and syncs files, and the ops HTTP server. glibc gives each thread that
allocates an arena of its own (up to eight per core), and each arena grows on its own:
memory freed in one is not reused by another. Under steady load a worker's resident memory
rose while its Python objects, SQLite's memory and glibc's bytes in use stayed flat: what
grew was free space in the heap. In 25-minute soaks on the same traffic, the heap grew by
5.2 MiB with glibc's default arenas and by 1.8 MiB with one, and resident memory by about
90 and 60 bytes an event. One arena slows the growth; it does not stop it
(docs/benchmarks.md). Throughput with one arena was within the runs' noise.

glibc reads ``MALLOC_ARENA_MAX`` from the environment at start-up; ``mallopt`` sets the same
limit from inside the process, so it holds however the worker is started (``hub up``, a
container, a test). It must run before the worker starts its first thread: a thread that
already has an arena keeps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["M_ARENA_MAX", "limit_arenas"]

#: glibc's ``mallopt`` parameter for the most arenas (malloc.h)
M_ARENA_MAX = -8


def limit_arenas(count: int) -> bool:
    """Cap the C library's malloc arenas at ``count`` (0: leave its default).

    Returns whether the limit was set: False where the C library is not glibc (musl has no
    arenas to limit) or ``count`` is 0.
    """
    if count <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, count))
