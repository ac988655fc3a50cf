"""Shared state in PostgreSQL: the same tables and SQL as the SQLite files, for many hosts.

With ``HUB_STATE_URL=postgresql://...`` (``hub.state``) the seen-event store, the workflow
registers and the case keyring live in one PostgreSQL database that every router worker, on
any host, opens; a worker's data dir then holds nothing another worker needs.

One SQL text serves both engines: the stores write the subset SQLite and PostgreSQL share
(``INSERT ... ON CONFLICT``, ``CAST(? AS TEXT)`` where a bare parameter's type cannot be
inferred), and ``PgSession`` turns SQLite's ``?`` placeholders into psycopg's ``%s``, once
per statement text. So a register's logic is written once and the contract tests
(``tests/unit/test_state_contract.py``) hold both backends to it.

Transactions. ``_tx`` is one READ COMMITTED transaction. Where SQLite's ``BEGIN IMMEDIATE``
serialised a read-modify-write across processes, the PostgreSQL stores take a
transaction-scoped advisory lock on the key they change (``_lock_key``: it covers a row not
written yet, which ``SELECT ... FOR UPDATE`` cannot), so two workers never interleave one
either; inserts that only claim a key rely on ``ON CONFLICT`` alone.

Group commit (``hub.durable``), as with SQLite. With ``group`` a store's connection commits
with ``synchronous_commit=off`` (atomic and visible to every worker at once; the WAL is
flushed within ``wal_writer_delay``), and ``sync`` makes every commit before it durable:
one tiny transaction that is given a transaction id and commits with
``synchronous_commit=on``, and so flushes the server's WAL up to its own commit record,
which lies after every earlier commit (WAL is one sequence). The event that wrote is
acknowledged only after that round, exactly as with SQLite's one fsync of the ``-wal`` file.
Without ``group`` (the CLI, the sweeps) every commit is durable when it returns.

A connection lost (server restart, network) is reopened on the next call; the call that saw
it fails with the store's error, and the router retries the batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import psycopg

from hub.audit.postgres import redacted_url
from hub.durable import GroupSync
from hub.errors import HubError
from hub.workflows.sqlite_state import RegisterError, SQLiteState

__all__ = ["PgConnection", "PgSession", "PostgresState", "libpq_url", "postgres_ddl"]

_CONNECT_TIMEOUT_S = 10
#: as long as SQLite's busy timeout: then the store's error, and the caller retries
_LOCK_TIMEOUT = "30s"

PgConnection = psycopg.Connection[tuple[Any, ...]]


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` and ``postgres://`` as libpq URLs."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return url


class _Statements:
    """A connection that takes SQLite's ``?`` placeholders (the stores' one SQL text)."""

    def __init__(self, conn: PgConnection, cache: dict[str, str]) -> None:
        self.raw = conn
        self._cache = cache

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[tuple[Any, ...]]:
        """Run one statement with ``?`` placeholders.

        None of the stores' SQL holds a literal ``?`` or ``%``.
        """
        text = self._cache.get(sql)
        if text is None:
            text = self._cache[sql] = sql.replace("?", "%s")
        return self.raw.execute(text, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters (one pipelined round trip)."""
        text = self._cache.get(sql)
        if text is None:
            text = self._cache[sql] = sql.replace("?", "%s")
        with self.raw.cursor() as cur:
            cur.executemany(text, [tuple(r) for r in rows])


def postgres_ddl(statement: str) -> str:
    """A store's SQLite DDL as PostgreSQL DDL: the same tables, the same order of text.

    ``TEXT`` columns get the ``"C"`` collation, so ``ORDER BY`` sorts bytewise as SQLite's
    default ``BINARY`` collation does, whatever the database's locale (listings such as
    ``hub marac status`` come out in the same order on both); ``BLOB`` is ``BYTEA``;
    ``WITHOUT ROWID`` is SQLite's alone (a PostgreSQL table is a heap with its indexes).
    """
    text = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)
    text = re.sub(r"\bBLOB\b", "BYTEA", text)
    return re.sub(r"\s*WITHOUT ROWID\s*$", "", text)


class PgSession:
    """One PostgreSQL connection, its transactions, its error, and the group commit's sync.

    Safe to share between threads of one process (a lock serialises them on the one
    connection, as ``SQLiteState`` does with its file).

    Args:
        url: a ``postgresql://`` URL (its password is never echoed).
        label: what the store is, for error messages.
        error: the store's ``HubError`` type.
        ddl: ``CREATE ... IF NOT EXISTS`` statements run once when opened.
        group: the router's group commit (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        error: type[HubError],
        ddl: Sequence[str] = (),
        group: GroupSync | None = None,
    ) -> None:
        self._url = libpq_url(url)
        self.display_url = redacted_url(url)
        self.label = label
        self._error = error
        self._group = group
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self._conn: PgConnection | None = None
        self._closed = False
        with self._lock, self._guard("open"):
            conn = self._connection()
            with conn.transaction():
                # several workers opening a new database at once: one creates the tables
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('hub.state.ddl'))")
                for statement in ddl:
                    conn.execute(statement)

    def _connection(self) -> PgConnection:
        if self._closed:
            raise self._error(f"{self.label} {self.display_url}: used after close")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=_CONNECT_TIMEOUT_S,
                application_name="hub-state",
                options=f"-c lock_timeout={_LOCK_TIMEOUT} -c synchronous_commit="
                + ("off" if self._group is not None else "on"),
            )
        return self._conn

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self._error(f"{self.label} {self.display_url}: {what}: {first}") from exc

    @contextmanager
    def tx(self) -> Iterator[_Statements]:
        """A write transaction; rolled back on any error. Marks the group commit dirty."""
        with self._lock, self._guard("write"):
            conn = self._connection()
            with conn.transaction():
                yield _Statements(conn, self._cache)
        if self._group is not None:
            self._group.dirty(self.sync, None)

    @contextmanager
    def read(self) -> Iterator[_Statements]:
        """The connection for reads (autocommit: each statement sees every commit before it)."""
        with self._lock, self._guard("read"):
            yield _Statements(self._connection(), self._cache)

    def sync(self) -> None:
        """Make every commit so far durable, by any connection (see the module docstring)."""
        with self._lock, self._guard("sync"):
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute("SELECT txid_current()")  # an xid: the commit flushes (any PG)

    def close(self) -> None:
        """Close the connection; further calls are errors."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __del__(self) -> None:
        # a store dropped unclosed (``CaseKeys`` objects the CLI opens for one call): close
        # the connection here rather than leave psycopg to warn about it when collected
        conn = getattr(self, "_conn", None)
        if conn is not None and not conn.closed:
            conn.close()


class PostgresState(SQLiteState):
    """``SQLiteState`` over a PostgreSQL database: a store's SQLite class, on PostgreSQL.

    A store ``S(SQLiteState)`` gets its PostgreSQL twin as ``class PostgresS(PostgresState,
    S)``: the store's methods, unchanged, run on this connection, and the twin is an ``S``
    wherever one is expected. Its tables are ``ddl`` through ``postgres_ddl``, or ``pg_ddl``.
    """

    #: the tables in PostgreSQL; None: ``ddl`` through ``postgres_ddl``
    pg_ddl: Sequence[str] | None = None

    def __init__(self, url: str, *, group: GroupSync | None = None) -> None:
        self.url = url
        self._pg = PgSession(
            url,
            label=self.label,
            error=RegisterError,
            ddl=[postgres_ddl(s) for s in self.ddl] if self.pg_ddl is None else self.pg_ddl,
            group=group,
        )
        self.path = Path(self._pg.display_url)  # for messages only: there is no file
        self._group = group

    def close(self) -> None:
        """Close the connection."""
        self._pg.close()

    def __enter__(self) -> Self:
        return self

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._pg.tx() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._pg.read() as conn:
            yield conn

    def _lock_key(self, conn: Any, key: str) -> None:
        """A transaction-scoped advisory lock on (store, key): a row not written yet too."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"{self.label}:{key}",))

    def sync(self) -> None:
        """Make every commit so far durable (``PgSession.sync``)."""
        self._pg.sync()
