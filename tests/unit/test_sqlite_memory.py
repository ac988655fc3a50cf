"""``sqlite_memory``: what SQLite's allocator holds, read from the library sqlite3 uses."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.state.sqlite_memory import sqlite_memory


def test_a_page_cache_filling_and_freed_is_seen() -> None:
    before = sqlite_memory()
    assert before is not None  # Debian's Python links libsqlite3 as a shared library
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 5000)  # about 1 MiB
    held = sqlite_memory()
    assert held is not None
    assert held - before > 1_000_000
    conn.close()
    after = sqlite_memory()
    assert after is not None
    assert after < held - 1_000_000


def test_another_copy_of_the_library_in_the_process_is_not_the_one_read(tmp_path: Path) -> None:
    """A second libsqlite3 mapped into the process (a copy some other library loaded) is not
    the one ``sqlite3`` uses: its counters say nothing of the module's page caches."""
    shared = _mapped_libsqlite3()
    if shared is None:
        pytest.skip("sqlite3 here does not link libsqlite3 as a shared library")
    copy = tmp_path / "libsqlite3.so.0"
    shutil.copyfile(shared, copy)
    done = subprocess.run(
        [sys.executable, "-c", _WITH_A_COPY, str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, held = (int(n) for n in done.stdout.split())
    assert held - before > 1_000_000


#: a process that loads a copy of libsqlite3 (argv[1]) after the module's own, so it is
#: mapped below it and listed first in /proc/self/maps, then fills a page cache
_WITH_A_COPY = """
import ctypes, sqlite3, sys
ctypes.CDLL(sys.argv[1])
from hub.state.sqlite_memory import sqlite_memory
before = sqlite_memory()
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x TEXT)")
conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 5000)
print(before, sqlite_memory())
"""


def _mapped_libsqlite3() -> Path | None:
    """The shared libsqlite3 this process's ``sqlite3`` module has mapped, if any."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.rpartition(" ")[2]
        if "/libsqlite3.so" in path:
            return Path(path)
    return None
