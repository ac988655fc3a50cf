"""The console's live sign-ins, held on the server so that signing out ends one everywhere.

The session itself is a signed cookie (``hub.web.session``): the server keeps no state for
it, so clearing the cookie on sign-out only clears the browser's copy, and a copy taken
before (from a shared machine, a proxy log, a stolen laptop) would work until it expired.
So each sign-in also gets a random session id, and the server keeps the ids it still
honours: a sign-in adds its id, a sign-out removes it, and a request whose id is not here
(or is past its absolute lifetime) is not signed in. An allow-list rather than a list of
revocations fails closed: a lost or wiped file ends every session instead of reviving any.

The ids live in SQLite in the data dir (``console-sessions.sqlite3``, 0600 like every file
there), so they hold across console restarts (the cookie's signing key does too) and across
processes serving one data dir. Only the SHA-256 of an id is stored: the file alone does not
give anyone a session.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from hub.errors import ConfigError

__all__ = ["SESSIONS_FILE", "LiveSessions"]

SESSIONS_FILE = "console-sessions.sqlite3"
_FILE_MODE = 0o600
_TIMEOUT_S = 5.0  # another console process holding the write lock: wait, then fail
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS live_sessions ("
    " id_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, issued REAL NOT NULL,"
    " expires REAL NOT NULL)"
)


class LiveSessions:
    """The sign-ins this data dir's consoles honour, by session id."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LiveSessions:
        """``<data_dir>/console-sessions.sqlite3``."""
        return cls(data_dir / SESSIONS_FILE)

    def start(self, name: str, *, issued: float, expires: float) -> str:
        """Record a new sign-in by ``name``; returns its session id (for the cookie only).

        Sign-ins already past their lifetime are dropped here, so the table holds about as
        many rows as there are people signed in.

        Raises:
            ConfigError: the sessions file cannot be written.
        """
        session_id = secrets.token_urlsafe(32)
        with self._connect() as conn:
            conn.execute("DELETE FROM live_sessions WHERE expires <= ?", (issued,))
            conn.execute(
                "INSERT INTO live_sessions (id_sha256, name, issued, expires) VALUES (?, ?, ?, ?)",
                (_digest(session_id), name, issued, expires),
            )
        return session_id

    def is_live(self, session_id: str, *, now: float) -> bool:
        """Whether the server still honours this session id at ``now``.

        Raises:
            ConfigError: the sessions file cannot be read.
        """
        with self._connect() as conn:
            row = conn.execute(
                "SELECT issued, expires FROM live_sessions WHERE id_sha256 = ?",
                (_digest(session_id),),
            ).fetchone()
        return row is not None and row[0] <= now <= row[1]

    def end(self, session_id: str) -> None:
        """Stop honouring this session id (sign-out); an unknown id is already ended.

        Raises:
            ConfigError: the sessions file cannot be written.
        """
        with self._connect() as conn:
            conn.execute("DELETE FROM live_sessions WHERE id_sha256 = ?", (_digest(session_id),))

    def end_all(self, name: str) -> int:
        """End every sign-in of ``name`` (an account removed or changed); returns how many.

        Raises:
            ConfigError: the sessions file cannot be written.
        """
        with self._connect() as conn:
            return conn.execute("DELETE FROM live_sessions WHERE name = ?", (name,)).rowcount

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One short transaction on its own connection (requests run on several threads)."""
        conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # owner-only even where no hub entry set the umask (hub.private): SQLite gives its
            # journal the database's mode
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, _FILE_MODE))
            conn = sqlite3.connect(self.path, timeout=_TIMEOUT_S)
            with conn:  # commits, or rolls back on an error
                conn.execute(_SCHEMA)
                yield conn
        except sqlite3.Error as exc:
            raise ConfigError(
                f"console sessions {self.path}: expected a readable, writable SQLite file, "
                f"got {type(exc).__name__}: {exc}"
            ) from exc
        except OSError as exc:
            raise ConfigError(f"console sessions {self.path}: cannot open: {exc}") from exc
        finally:
            if conn is not None:
                conn.close()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()
