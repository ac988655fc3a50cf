"""Giving freed heap memory back (``hub.agents.heap``): RSS falls when glibc holds free pages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hub.agents import heap


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_pages_inside_the_heap_go_back_to_the_system() -> None:
    assert heap.can_trim()  # the hub's machines run glibc
    # 8 KiB buffers between small ones that stay: once the big ones are freed the heap is
    # full of holes glibc keeps (it returns memory only from the top), each holding whole pages
    big, small = [], []
    for _ in range(4000):
        big.append(bytes(8192))
        small.append(bytes(600))
    del big
    before = rss_bytes()
    assert heap.trim()
    after = rss_bytes()
    assert before - after >= 8 * 1024 * 1024  # of the 32 MiB freed, at least a page a hole
    assert len(small) == 4000  # the live ones are untouched
