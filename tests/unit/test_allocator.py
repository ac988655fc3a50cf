"""``hub.agents.allocator``: one malloc arena for all of a worker's threads.

Each case runs in a fresh interpreter: the limit only binds threads that have no arena yet,
and this test process has threads of its own already.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from hub.agents.allocator import limit_arenas

# Four threads allocate at once and hold their memory until all four have; then glibc's own
# report (malloc_info) is counted for arenas (<heap nr=...>).
_PROBE = r"""
import ctypes, sys, tempfile, threading
from hub.agents.allocator import limit_arenas

limited = limit_arenas(int(sys.argv[1]))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
together = threading.Barrier(5)

def work():
    held = [libc.malloc(4096) for _ in range(64)]
    together.wait()
    together.wait()
    for p in held:
        libc.free(p)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
together.wait()  # every thread holds its blocks
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    fp = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    heaps = open(report.name).read().count("<heap nr=")
together.wait()
for t in threads:
    t.join()
print(limited, heaps)
"""

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's"
)


def _arenas(limit: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(limit)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@glibc_only
def test_threads_get_arenas_of_their_own_by_default() -> None:
    limited, heaps = _arenas(0)
    assert not limited
    assert heaps > 1  # what made a worker's RSS creep: each thread's arena grows on its own


@glibc_only
def test_one_arena_is_shared_by_every_thread() -> None:
    limited, heaps = _arenas(1)
    assert limited
    assert heaps == 1


def test_zero_leaves_the_default() -> None:
    assert limit_arenas(0) is False
