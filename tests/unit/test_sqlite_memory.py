"""``sqlite_memory``: what SQLite's allocator holds, read from the library sqlite3 uses."""

from __future__ import annotations

import sqlite3

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
