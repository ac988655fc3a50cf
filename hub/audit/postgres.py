"""PostgreSQL audit store: the same table and semantics as SQLite, shared by several hosts.

Why PostgreSQL: a partnership running router workers on more than one host needs one audit
log they can all append to; a SQLite file only serves one host.

Append order, and why writers take a lock. The Merkle log (RFC 9162) is built over records
in ``seq`` order, and a verifier or checkpointer reading the store must never see record
``N+1`` before record ``N``, nor a gap that is filled later. A sequence or identity column
alone does not give that: values are handed out when a row is inserted, not when it commits,
so two concurrent transactions can commit out of order (a reader briefly sees ``seq`` 6
without 5), and a rolled-back insert or an ``ON CONFLICT DO NOTHING`` skip burns a value for
good, leaving a gap that SQLite (whose counter is transactional) never has. So every append
runs in one READ COMMITTED transaction that first takes a transaction-scoped advisory lock
(``pg_advisory_xact_lock``), then numbers its rows from a one-row counter (``audit_seq``)
that is updated in the same transaction. Writers are therefore serialised: the next writer
gets the lock only after the previous commit is visible, so ``seq`` order is commit order,
``seq`` is dense (1, 2, 3, ... exactly like SQLite's, whatever is rolled back), and readers,
which take no lock, see a consistent prefix at every statement (MVCC). The counter, not
``MAX(seq)``, is the source so that a seq is never reused even if rows are later pruned
(SQLite's ``AUTOINCREMENT`` promise). The cost is one writer at a time, which an append of a
few small rows per event easily bears; a SERIALIZABLE transaction would also order commits
but fails with serialisation errors under contention instead of waiting.

``seq`` is ``GENERATED ALWAYS AS IDENTITY`` as the layout asks, but the store always supplies
it (``OVERRIDING SYSTEM VALUE``) and never uses the generator: an ``INSERT`` by anything that
bypasses the lock and the counter fails on the primary key instead of silently reordering
the log.

Appends are batched (issue 16): one ``COPY`` per table in the one locked transaction, each
row built as it is copied so the server inserts while the client builds, in four round trips
(the lock, counter and shared values as one simple query, the two copies, the commit). A
replayed id rolls the whole transaction back, and a second one, under the lock again, skips
the ids one query finds stored. Other choices: as in SQLite,
each record is kept once, as the columns queries filter on and ``canonical`` (``BYTEA``)
packed against them (``hub.audit.packing``); ``time`` is ``TIMESTAMPTZ`` (so ``since``
compares instants) and is read back as text formatted by the server. The schema version
lives in ``audit_schema``; a newer one is refused. A connection lost (database restart,
network) is reopened on the next call, so the audit sink's retry loop recovers by itself.

Leaf numbering. Because ``seq`` is dense and audit retention prunes a prefix, leaf i (the row
of rank i - K in ``seq`` order, K leaves pruned) is the row with ``seq`` i + 1, so reading
leaves is a primary key range that costs what it returns, and the size of the tree is the
highest ``seq``. Rows are still always read in ``seq`` order: a read continues from the
``seq`` where the previous read of this store stopped (``LeafCursors``), or starts at
``seq`` i + 1; a window whose ``seq`` values do not run on from there (rows deleted or
inserted by hand) is read again by rank, and ``hub audit verify`` walks the log from its
first stored row from cursor to cursor, so it sees exactly what is stored, in that order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import BytesBinaryDumper

from hub.audit.packing import INDEX_COLUMNS, SharedValues, pack
from hub.audit.retention import PrunedPrefix
from hub.audit.sqlite import (
    LeafCursors,
    WindowStart,
    WrittenRows,
    _pack,
    _prepare,
    _record,
    row_faults,
    stored_checkpoint,
    usable_values,
)
from hub.clock import utc
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord

__all__ = ["SCHEMA_VERSION", "PostgresAuditStore", "redacted_url"]

#: version of the layout below, kept in ``audit_schema``; a newer database is refused.
#: 2: ``audit_pruned`` (audit retention); a version 1 database is upgraded when opened.
#: 3: the record kept once, as in SQLite's schema 4: ``canonical`` packed against the columns
#: queries filter on (``hub.audit.packing``), the other columns gone, the case index partial.
#: An older database is rebuilt in the new layout when opened (``_rebuild``).
SCHEMA_VERSION = 3
#: key of the advisory lock every writer holds for its whole transaction (an arbitrary
#: constant: the first 8 bytes of SHA-256("hub.audit.append") as a signed integer)
_APPEND_LOCK = 0x0293_0A7E_87B9_5C3B
_CONNECT_TIMEOUT_S = 10
#: record ids per ``stored_ids`` statement (one array parameter, so only for memory's sake)
_IDS_CHUNK = 10_000
_LOCK_TIMEOUT = "30s"  # as long as SQLite's busy timeout; then AuditError and the sink retries

#: the columns queries filter on, then the record packed against them (``hub.audit.packing``)
_COLUMNS = (*INDEX_COLUMNS, "canonical")
#: ``time`` as the text the packing borrows from (``_utc_text``: microseconds, ``+00:00``),
#: formatted by the server so reads parse no timestamps
_TIME_TEXT = "to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
#: what a read of records selects: ``_COLUMNS``, ``time`` as text (read in binary format,
#: so ``canonical`` arrives as bytes, not hex)
_READ = ", ".join(_TIME_TEXT if c == "time" else c for c in _COLUMNS)
_TIME = INDEX_COLUMNS.index("time")

# The fixed-width columns first, so no padding sits between them.
_RECORDS_DDL = """CREATE TABLE {name} (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time TIMESTAMPTZ NOT NULL,
    record_id TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    publisher TEXT,
    recipient TEXT,
    decision TEXT NOT NULL,
    case_pseudonym TEXT,
    canonical BYTEA NOT NULL
)"""
_INDEX_DDL = (
    "CREATE INDEX audit_records_event_id ON audit_records (event_id)",
    "CREATE INDEX audit_records_recipient ON audit_records (recipient)",
    "CREATE INDEX audit_records_publisher ON audit_records (publisher)",
    # ``case_pseudonym = %s`` implies NOT NULL; acknowledgements name no case.
    "CREATE INDEX audit_records_case ON audit_records (case_pseudonym) "
    "WHERE case_pseudonym IS NOT NULL",
    "CREATE INDEX audit_records_time ON audit_records (time)",
)
_DDL = (
    _RECORDS_DDL.format(name="audit_records"),
    """CREATE TABLE audit_subjects (
        seq BIGINT NOT NULL REFERENCES audit_records (seq),
        pseudonym TEXT NOT NULL,
        PRIMARY KEY (pseudonym, seq)
    )""",
    *_INDEX_DDL,
    "CREATE TABLE audit_seq (last_seq BIGINT NOT NULL)",
    "INSERT INTO audit_seq (last_seq) VALUES (0)",
    # Signed checkpoints (C2SP tlog-checkpoint notes) of the Merkle log, in saving order.
    """CREATE TABLE audit_checkpoints (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tree_size BIGINT NOT NULL,
        note TEXT NOT NULL UNIQUE
    )""",
)
# Audit retention (``hub.audit.retention``), as in SQLite: one row per prune; leaf i is the
# row at position i - K in seq order, K = MAX(pruned_size).
_PRUNED_DDL = """CREATE TABLE IF NOT EXISTS audit_pruned (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pruned_size BIGINT NOT NULL UNIQUE,
    frontier BYTEA NOT NULL,
    proofs TEXT NOT NULL,
    before TIMESTAMPTZ NOT NULL,
    pruned_at TIMESTAMPTZ NOT NULL
)"""
_PRUNED_SIZE = "(SELECT COALESCE(MAX(pruned_size), 0) FROM audit_pruned)"
#: the size of the Merkle tree: the highest seq (leaf i is seq i + 1), or K when every stored
#: row was pruned; an index lookup, not a count of the rows
SIZE_SQL = (
    f"SELECT GREATEST({_PRUNED_SIZE}, "  # noqa: S608 - constant names
    "COALESCE((SELECT MAX(seq) FROM audit_records), 0))"
)
# ``mismatched_rows`` reads the subject rows of a seq range; the primary key starts with the
# pseudonym, so without this the read scanned the whole table. Additive: created when a
# store without it is opened, ignored by hubs that do not know it (no version bump).
_SUBJECTS_SEQ_INDEX = "audit_subjects_seq"
_SUBJECTS_SEQ_DDL = f"CREATE INDEX IF NOT EXISTS {_SUBJECTS_SEQ_INDEX} ON audit_subjects (seq)"
#: the subject index rows of a seq range, through ``audit_subjects_seq``
SUBJECTS_SQL = "SELECT seq, pseudonym FROM audit_subjects WHERE seq BETWEEN %s AND %s"
#: a record's leaf index, through the ``record_id`` unique index
RECORD_INDEX_SQL = "SELECT seq - 1 FROM audit_records WHERE record_id = %s"
# COPY writes the seq given, as INSERT ... OVERRIDING SYSTEM VALUE would: the store numbers
# rows from ``audit_seq`` under the append lock, never from the identity generator.
# Binary COPY: no text rendering of timestamps or hex of ``canonical`` on either side.
_COPY_RECORDS = f"COPY {{table}} (seq, {', '.join(_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_RECORD_TYPES = [
    "int8",
    *("timestamptz" if c == "time" else "text" for c in INDEX_COLUMNS),
    "bytea",
]
_COPY_SUBJECTS = "COPY audit_subjects (seq, pseudonym) FROM STDIN (FORMAT BINARY)"
_SUBJECT_TYPES = ["int8", "text"]
# The values of ``hub.audit.packing.SHARED`` fields, each kept once (as in SQLite).
_VALUES_DDL = """CREATE TABLE IF NOT EXISTS audit_values (
    id BIGINT PRIMARY KEY,
    value BYTEA NOT NULL UNIQUE
)"""
_INSERT_VALUE = "INSERT INTO audit_values (id, value) VALUES (%s, %s)"
_NEW_VALUES_SQL = "SELECT id, value FROM audit_values WHERE id > %s ORDER BY id"
_STORED_SQL = "SELECT record_id FROM audit_records WHERE record_id = ANY(%s)"
_COPY_RECORDS_TABLE = _COPY_RECORDS.format(table="audit_records")
#: number ``count`` rows: the counter advanced, its value before returned
_ADVANCE_SQL = "UPDATE audit_seq SET last_seq = last_seq + {count} RETURNING last_seq - {count}"
#: ``_NEW_VALUES_SQL`` with the id inline, for ``_begin``'s simple query (no parameters)
_NEW_VALUES_LITERAL = "SELECT id, value FROM audit_values WHERE id > {last} ORDER BY id"
#: rows read per round trip when ``_rebuild`` repacks an older database
_REBUILD_BATCH = 10_000


def window_sql(columns: str, how: WindowStart) -> str:
    """A read of consecutive leaves: ``(seq, *columns)`` in seq order.

    Parameters: ``first``: limit; ``after``: seq, limit; ``at`` (leaf i, read from seq
    i + 1): i, limit; ``rank``: limit, offset. Every form but ``rank`` is a primary key range
    that reads only what it returns.
    """
    select = f"SELECT seq, {columns} FROM audit_records"  # noqa: S608 - constant names
    where = {"first": "", "after": " WHERE seq > %s", "at": " WHERE seq > %s", "rank": ""}[how]
    tail = " ORDER BY seq LIMIT %s OFFSET %s" if how == "rank" else " ORDER BY seq LIMIT %s"
    return select + where + tail


def redacted_url(url: str) -> str:
    """The URL without its password (or anything else), safe for messages and logs."""
    try:
        parts = conninfo_to_dict(_libpq_url(url))
    except psycopg.Error:
        return "postgresql://<unparseable URL>"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host') or ''}{port}/{parts.get('dbname') or ''}"


def _libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style ``postgresql+driver://`` and ``postgres://`` as libpq URLs."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.split("+", 1)[0] in ("postgresql", "postgres"):
        return f"postgresql://{rest}"
    return url


class _Built(NamedTuple):
    """One record's row as ``append`` copies it (``seq`` first), and its subjects (distinct).

    ``read`` is the row as ``leaves`` reads it back (``seq``, ``time`` as text) and
    ``canonical`` its canonical bytes, for ``WrittenRows``.
    """

    copied: tuple[Any, ...]
    subjects: tuple[str, ...]
    read: tuple[Any, ...]
    canonical: bytes


def _copy(
    cur: psycopg.Cursor[tuple[Any, ...]],
    statement: str,
    types: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    """One binary ``COPY ... FROM STDIN`` of ``rows``, sent as they come."""
    with cur.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _commit(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """COMMIT the transaction opened by ``BEGIN``; refuse one the server rolled back instead.

    (A COMMIT of a failed transaction answers ROLLBACK without an error.)
    """
    status = conn.execute("COMMIT").statusmessage
    if status != "COMMIT":
        raise psycopg.OperationalError(f"expected COMMIT, got {status}")


class _StoreClosedError(Exception):
    """Raised inside a call after ``close``; ``_guard`` reports it as ``AuditError``."""


class PostgresAuditStore:
    """``AuditStore`` over one PostgreSQL database (see the module docstring for ordering).

    One connection per instance (autocommit; writes use explicit transactions), guarded by a
    lock so a thread pool may share it, and reopened if the server drops it.
    """

    def __init__(self, url: str) -> None:
        self._url = _libpq_url(url)
        self.display_url = redacted_url(url)
        self._lock = threading.Lock()
        self._cursors = LeafCursors()
        self._shared = SharedValues()
        self._written = WrittenRows()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._closed = False
        with self._lock, self._guard("open"):
            conn = self._connection()
            try:
                self._migrate(conn)
            except BaseException:
                self._close_quietly()
                raise

    def __repr__(self) -> str:
        return f"PostgresAuditStore({self.display_url!r})"

    def __enter__(self) -> PostgresAuditStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def append(self, records: Sequence[AuditRecord]) -> int:
        """Append records in one transaction, skipping record ids already stored.

        Under the lock, each record's row is built as it is copied (``COPY``), so the server
        inserts one part of the batch while the next is built; a replayed id makes one
        query for the ids already stored (the first write stands, no seq used), and the
        rest are copied again, numbered from ``audit_seq``.

        Returns:
            How many records were newly stored.
        """
        batch: dict[str, AuditRecord] = {}
        for r in records:
            batch.setdefault(r.record_id, r)  # the first of a batch's duplicates stands
        if not batch:
            return 0
        with self._lock, self._guard("append"):
            conn = self._connection()
            try:
                written = self._append(conn, batch)
            except BaseException:
                self._shared.discard()
                raise
            self._shared.commit()
        return written

    def _append(
        self, conn: psycopg.Connection[tuple[Any, ...]], batch: dict[str, AuditRecord]
    ) -> int:
        """``append``'s transaction: how many of ``batch`` it stored.

        The batch is copied in optimistically, numbered from ``audit_seq`` advanced by its
        size as the transaction begins (``_begin``: one round trip). A replayed id fails the
        unique index: that transaction is rolled back whole (nothing of it stays, not even
        the counter) and ``_append_again`` writes the batch without the ids already stored.
        A transaction this method leaves open (any failure) is rolled back, or the connection
        closed, so nothing is half written.
        """
        built: dict[str, _Built] = {}
        try:
            seq = self._begin(conn, len(batch))
            with conn.cursor() as cur:
                try:
                    _copy(cur, _COPY_RECORDS_TABLE, _RECORD_TYPES, self._rows(batch, built, seq))
                except psycopg.errors.UniqueViolation:
                    conn.execute("ROLLBACK")
                    # Rows were numbered against shared values the rollback took back.
                    self._shared.discard()
                    return self._append_again(conn, batch)
                self._finish(conn, cur, batch, built, seq)
        except BaseException:
            self._roll_back(conn)
            raise
        return len(batch)

    def _append_again(
        self, conn: psycopg.Connection[tuple[Any, ...]], batch: dict[str, AuditRecord]
    ) -> int:
        """``_append`` once a replayed id was met: skip the ids stored, copy the rest.

        A new transaction under the lock (the first was rolled back), so the stored ids, the
        counter and the shared values are read after any writer that came in between.
        """
        self._begin(conn, None)
        for (stored,) in conn.execute(_STORED_SQL, (list(batch),)).fetchall():
            batch.pop(str(stored), None)
        if not batch:
            _commit(conn)
            return 0
        seq = self._advanced(conn.execute(_ADVANCE_SQL.format(count=len(batch))).fetchone())
        built: dict[str, _Built] = {}
        with conn.cursor() as cur:
            _copy(cur, _COPY_RECORDS_TABLE, _RECORD_TYPES, self._rows(batch, built, seq))
            self._finish(conn, cur, batch, built, seq)
        return len(batch)

    def _begin(self, conn: psycopg.Connection[tuple[Any, ...]], count: int | None) -> int:
        """Open the append transaction: the lock, then the shared values other writers added.

        With ``count``, the counter is advanced by it too and its value before returned
        (0 without). One round trip: the statements go as one simple query, each after the
        lock with its own READ COMMITTED snapshot, so each sees the previous writer's commit.
        """
        statements = ["BEGIN", f"SELECT pg_advisory_xact_lock({_APPEND_LOCK})"]
        if count is not None:
            statements.append(_ADVANCE_SQL.format(count=int(count)))
        statements.append(_NEW_VALUES_LITERAL.format(last=int(self._shared.last)))
        seq = 0
        with conn.cursor() as cur:
            cur.execute("; ".join(statements))
            cur.nextset()  # past BEGIN
            if count is not None:
                cur.nextset()  # past the lock
                seq = self._advanced(cur.fetchone())
            cur.nextset()
            self._shared.learn(usable_values(cur.fetchall()))
        return seq

    def _advanced(self, row: tuple[Any, ...] | None) -> int:
        """The counter's value before ``_ADVANCE_SQL`` moved it, from the row it returned."""
        if row is None:
            raise AuditError(f"audit store {self.display_url}: audit_seq is empty")
        return int(row[0])

    def _rows(
        self, batch: dict[str, AuditRecord], built: dict[str, _Built], seq: int
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of ``batch`` as copied, numbered from ``seq + 1``, each built as it goes."""
        build = self._build
        for i, (record_id, record) in enumerate(batch.items(), seq + 1):
            row = built[record_id] = build(record, i)
            yield row.copied

    def _finish(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        cur: psycopg.Cursor[tuple[Any, ...]],
        batch: dict[str, AuditRecord],
        built: dict[str, _Built],
        seq: int,
    ) -> None:
        """Copy the subject rows and new shared values of a copied batch, then commit."""
        _copy(
            cur,
            _COPY_SUBJECTS,
            _SUBJECT_TYPES,
            (
                (i, pseudonym)
                for i, record_id in enumerate(batch, seq + 1)
                for pseudonym in built[record_id].subjects
            ),
        )
        new_values = self._shared.new_rows()
        if new_values:
            cur.executemany(_INSERT_VALUE, new_values)
        _commit(conn)
        kept = [built[record_id] for record_id in batch]
        self._written.add([row.read for row in kept], [row.canonical for row in kept])

    def _roll_back(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """End a transaction ``_append`` left open: ROLLBACK, or close the connection.

        Closing also ends it (the server rolls back); the next call reconnects.
        """
        if conn.closed or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    def _build(self, record: AuditRecord, seq: int) -> _Built:
        """A record's row numbered ``seq`` as copied (``canonical`` packed) and its subjects."""
        columns, canonical, values = _prepare(record)
        packed = _pack(canonical, values, columns, self._shared)
        return _Built(
            (seq, *columns[:_TIME], utc(record.time), *columns[_TIME + 1 :], packed),
            tuple(dict.fromkeys(record.subject_pseudonyms)),
            (seq, *columns, packed),
            canonical,
        )

    def _refresh_shared(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Learn the shared values other writers added since this store last read them."""
        self._shared.learn(
            usable_values(conn.execute(_NEW_VALUES_SQL, (self._shared.last,)).fetchall())
        )

    def query(
        self,
        *,
        event_id: str | None = None,
        party: str | None = None,
        subject_pseudonym: str | None = None,
        case_pseudonym: str | None = None,
        decision: AuditDecision | str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Records matching every given filter, in append order (see ``AuditStore``)."""
        if limit < 1:
            raise AuditError(f"audit query limit: expected at least 1, got {limit}")
        clauses: list[str] = []
        params: list[Any] = []
        if event_id is not None:
            clauses.append("event_id = %s")
            params.append(event_id)
        if party is not None:
            clauses.append("(recipient = %s OR publisher = %s)")
            params += [party, party]
        if subject_pseudonym is not None:
            clauses.append("seq IN (SELECT seq FROM audit_subjects WHERE pseudonym = %s)")
            params.append(subject_pseudonym)
        if case_pseudonym is not None:
            clauses.append("case_pseudonym = %s")
            params.append(case_pseudonym)
        if decision is not None:
            clauses.append("decision = %s")
            params.append(AuditDecision(decision).value)
        if since is not None:
            clauses.append("time >= %s")
            params.append(utc(since))
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        sql = f"SELECT seq, {_READ} FROM audit_records {where}ORDER BY seq LIMIT %s"  # noqa: S608
        with self._lock, self._guard("query"):
            conn = self._connection()
            rows = conn.execute(sql, [*params, limit], binary=True).fetchall()
            # After the rows: a value is committed with (or before) the rows that use it.
            self._refresh_shared(conn)
        return [_record(row[1:], self.display_url, self._shared) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of records per decision, every decision present (zero if none)."""
        result = {d.value: 0 for d in AuditDecision}
        with self._lock, self._guard("count"):
            rows = (
                self._connection()
                .execute("SELECT decision, COUNT(*) FROM audit_records GROUP BY decision")
                .fetchall()
            )
        result.update({str(decision): int(n) for decision, n in rows})
        return result

    def has_event(self, event_id: str) -> bool:
        """Whether any record about this event is stored."""
        with self._lock, self._guard("query"):
            row = (
                self._connection()
                .execute("SELECT 1 FROM audit_records WHERE event_id = %s LIMIT 1", (event_id,))
                .fetchone()
            )
        return row is not None

    def case_recipients(self, case_pseudonym: str) -> set[str]:
        """The parties delivered any event of the case (see ``AuditStore``)."""
        with self._lock, self._guard("query"):
            rows = (
                self._connection()
                .execute(
                    "SELECT DISTINCT recipient FROM audit_records WHERE case_pseudonym = %s "
                    "AND decision = 'delivered' AND recipient IS NOT NULL",
                    (case_pseudonym,),
                )
                .fetchall()
            )
        return {str(row[0]) for row in rows}

    def stored_ids(self, record_ids: Sequence[str]) -> set[str]:
        """Which of these record ids the store holds (see ``AuditStore``).

        ``record_id = ANY(array)`` through the unique index, in chunks of ``_IDS_CHUNK``
        inside one REPEATABLE READ transaction (one snapshot).
        """
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return set()
        found: set[str] = set()
        with self._lock, self._guard("query"):
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                for i in range(0, len(wanted), _IDS_CHUNK):
                    rows = conn.execute(
                        "SELECT record_id FROM audit_records WHERE record_id = ANY(%s)",
                        (wanted[i : i + _IDS_CHUNK],),
                    ).fetchall()
                    found.update(str(row[0]) for row in rows)
        return found

    def size(self) -> int:
        """Leaves pruned plus records stored: the size of the Merkle tree (see ``AuditStore``).

        The highest ``seq`` (an index lookup, not a count of the rows). One statement, so one
        snapshot: a concurrent prune cannot be seen half done.
        """
        with self._lock, self._guard("count"):
            row = self._connection().execute(SIZE_SQL).fetchone()
        return int(row[0]) if row is not None else 0

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Canonical bytes of leaves ``start`` .. ``end - 1``, append order (see ``AuditStore``).

        Leaf i is the row at rank i - K in ``seq`` order (as in SQLite); see the module
        docstring for how that is read without counting the rows before it.
        """
        if not 0 <= start <= end:
            raise AuditError(f"audit leaves: expected 0 <= start <= end, got {start}, {end}")
        with self._lock, self._guard("read"):
            conn = self._connection()
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                rows = self._window(conn, start, end, _READ, "audit leaves")
                self._refresh_shared(conn)
            return self._written.leaves(rows, self._shared, columns_at=1)

    def record_index(self, record_id: str) -> int | None:
        """Leaf index of a record (0-based, append order), or ``None`` if not stored.

        ``seq - 1``, since ``seq`` is dense and only a prefix is ever pruned.
        """
        with self._lock, self._guard("query"):
            row = self._connection().execute(RECORD_INDEX_SQL, (record_id,)).fetchone()
        return None if row is None else int(row[0])

    def mismatched_rows(self, start: int, end: int) -> list[int]:
        """Leaf indices in ``[start, end)`` whose columns disagree with their canonical bytes.

        The Merkle log hashes only ``canonical``; queries and reports read the other columns
        and ``audit_subjects``, so a hand edit of either is found here, at its own index.
        """
        if not 0 <= start <= end:
            raise AuditError(f"audit rows: expected 0 <= start <= end, got {start}, {end}")
        return self.checked_leaves(start, end)[1]

    def checked_leaves(self, start: int, end: int) -> tuple[list[bytes], list[int]]:
        """``leaves`` and ``mismatched_rows`` of one window, from one read (see ``AuditStore``)."""
        if not 0 <= start <= end:
            raise AuditError(f"audit leaves: expected 0 <= start <= end, got {start}, {end}")
        subjects: dict[int, set[str]] = {}
        with self._lock, self._guard("read"):
            conn = self._connection()
            # One snapshot for both reads, so a concurrent append cannot pair rows and
            # subject index entries from different moments.
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                rows = self._window(conn, start, end, _READ, "audit leaves")
                self._refresh_shared(conn)
                if rows:
                    named = conn.execute(SUBJECTS_SQL, (rows[0][0], rows[-1][0])).fetchall()
                    for seq, pseudonym in named:
                        subjects.setdefault(seq, set()).add(pseudonym)
        leaves, faults = row_faults(rows, subjects, self._shared)
        return leaves, [start + offset for offset in faults]

    def prunes(self) -> list[PrunedPrefix]:
        """Every prune so far, oldest first (see ``AuditStore``)."""
        with self._lock, self._guard("read prunes"):
            rows = (
                self._connection()
                .execute(
                    "SELECT pruned_size, frontier, proofs, before, pruned_at FROM audit_pruned "
                    "ORDER BY pruned_size"
                )
                .fetchall()
            )
        return [
            PrunedPrefix.from_stored(
                size=int(size),
                frontier=bytes(frontier),
                proofs=str(proofs),
                before=before,
                pruned_at=pruned_at,
            )
            for size, frontier, proofs, before, pruned_at in rows
        ]

    def prune(self, prefix: PrunedPrefix) -> int:
        """Delete the rows of leaves below ``prefix.size`` and keep ``prefix`` (see ``AuditStore``).

        Under the append lock, so no writer or checkpoint interleaves. Deleted tuples stay
        in the table files until ``VACUUM`` reclaims them, so a plain ``VACUUM`` of both
        tables follows (it does not block readers or writers).
        """
        with self._lock, self._guard("prune"):
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                row = conn.execute(
                    f"SELECT {_PRUNED_SIZE}, (SELECT COUNT(*) FROM audit_records)"  # noqa: S608
                ).fetchone()
                pruned, stored = (int(row[0]), int(row[1])) if row is not None else (0, 0)
                count = prefix.size - pruned
                if not 0 < count <= stored:
                    raise AuditError(
                        f"audit prune: expected a size in {pruned + 1}..{pruned + stored}, "
                        f"got {prefix.size}"
                    )
                doomed = "SELECT seq FROM audit_records ORDER BY seq LIMIT %s"
                conn.execute(
                    f"DELETE FROM audit_subjects WHERE seq IN ({doomed})",  # noqa: S608
                    (count,),
                )
                conn.execute(
                    f"DELETE FROM audit_records WHERE seq IN ({doomed})",  # noqa: S608
                    (count,),
                )
                conn.execute(
                    "INSERT INTO audit_pruned (pruned_size, frontier, proofs, before, pruned_at) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (
                        prefix.size,
                        prefix.frontier_bytes(),
                        prefix.proofs_json(),
                        utc(prefix.before),
                        utc(prefix.pruned_at),
                    ),
                )
            conn.execute("VACUUM audit_records, audit_subjects")
        return count

    def save_checkpoint(self, tree_size: int, note: str) -> None:
        """Keep a signed checkpoint note of the tree at ``tree_size`` (see ``AuditStore``).

        Under the append lock, so checkpoints are numbered in commit order like records.
        """
        with self._lock, self._guard("save checkpoint"):
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                conn.execute(
                    "INSERT INTO audit_checkpoints (tree_size, note) VALUES (%s, %s) "
                    "ON CONFLICT (note) DO NOTHING",
                    (tree_size, note),
                )

    def checkpoints(self) -> list[tuple[int, str]]:
        """Every saved checkpoint as ``(tree_size, note)``, in the order saved."""
        with self._lock, self._guard("read checkpoints"):
            rows = (
                self._connection()
                .execute("SELECT tree_size, note FROM audit_checkpoints ORDER BY id")
                .fetchall()
            )
        return [stored_checkpoint(size, note) for size, note in rows]

    def newest_checkpoint(self) -> tuple[int, str] | None:
        """The last checkpoint saved, or ``None`` (see ``AuditStore``)."""
        with self._lock, self._guard("read checkpoints"):
            row = (
                self._connection()
                .execute("SELECT tree_size, note FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else stored_checkpoint(*row)

    def close(self) -> None:
        """Close the connection (idempotent); further calls raise ``AuditError``."""
        with self._lock:
            self._close_quietly()

    def _close_quietly(self) -> None:
        """Close without taking the lock (for ``__init__``, which already holds it)."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The open connection, reconnecting if the server dropped the last one."""
        if self._closed:
            raise _StoreClosedError("the store is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)
            try:
                # ``COPY``'s bytea columns (set_types) through the plain bytes dumper: the one
                # psycopg finds by the type's oid (dbapi20's, for ``Binary`` wrappers) checks
                # each value in Python first, 0.2 us a row; the store writes only bytes.
                conn.adapters.register_dumper(bytes, BytesBinaryDumper)
                conn.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
                # Timestamps come back as UTC whatever the server's default zone.
                conn.execute("SET TIME ZONE 'UTC'")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn psycopg and socket errors into ``AuditError`` naming the (redacted) URL."""
        try:
            yield
        except (psycopg.Error, OSError, _StoreClosedError) as exc:
            message = str(exc).strip()
            raise AuditError(f"audit store {self.display_url}: cannot {action}: {message}") from exc

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        if self._schema_version(conn) == SCHEMA_VERSION and self._has_additions(conn):
            return  # readers never take the lock once the schema exists
        with conn.transaction():
            # The same lock as writers: two hubs starting at once create the tables once.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            version = self._schema_version(conn)
            if version == 0:
                conn.execute("CREATE TABLE audit_schema (version INTEGER NOT NULL)")
                for statement in _DDL:
                    conn.execute(statement)
            elif version > SCHEMA_VERSION:
                raise AuditError(
                    f"audit store {self.display_url}: expected schema version "
                    f"{SCHEMA_VERSION}, got {version} (written by a newer hub?)"
                )
            conn.execute(_VALUES_DDL)  # early version 3 stores lack it
            if version < SCHEMA_VERSION:
                # From 0, 1 or 2 (a row per version, so the history of upgrades stays visible).
                conn.execute(_PRUNED_DDL)
                if version:
                    self._rebuild(conn)
                conn.execute("INSERT INTO audit_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            # Any version: a store written by an earlier hub lacks it (IF NOT EXISTS: another
            # opener may have created it while we waited for the lock).
            conn.execute(_SUBJECTS_SEQ_DDL)

    def _rebuild(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Copy a version 1 or 2 database's records into the version 3 layout (once).

        Every row keeps its ``seq``; ``canonical`` is packed against the columns kept and the
        other columns are gone (the record in ``canonical`` is what queries read now). A row
        whose kept columns disagreed with ``canonical`` still does, and is still reported.
        Inside the caller's transaction, under the append lock.
        """
        conn.execute(_RECORDS_DDL.format(name="audit_records_new"))
        read = (
            f"SELECT seq, time, {_READ} FROM audit_records "  # noqa: S608 - constant names
            "WHERE seq > %s ORDER BY seq LIMIT %s"
        )
        last = 0
        self._refresh_shared(conn)
        with conn.cursor() as cur:
            while True:
                rows = conn.execute(read, (last, _REBUILD_BATCH)).fetchall()
                if not rows:
                    break
                with cur.copy(_COPY_RECORDS.format(table="audit_records_new")) as copy:
                    copy.set_types(_RECORD_TYPES)
                    for seq, time, *kept, canonical in rows:
                        packed = pack(bytes(canonical), kept, self._shared)
                        kept[_TIME] = time
                        copy.write_row((seq, *kept, packed))
                last = int(rows[-1][0])
            cur.executemany(_INSERT_VALUE, self._shared.new_rows())
        self._shared.commit()  # if the upgrade fails the store is not opened at all
        conn.execute("ALTER TABLE audit_subjects DROP CONSTRAINT audit_subjects_seq_fkey")
        conn.execute("DROP TABLE audit_records")
        conn.execute("ALTER TABLE audit_records_new RENAME TO audit_records")
        conn.execute("ALTER INDEX audit_records_new_pkey RENAME TO audit_records_pkey")
        conn.execute(
            "ALTER INDEX audit_records_new_record_id_key RENAME TO audit_records_record_id_key"
        )
        conn.execute(
            "ALTER TABLE audit_subjects ADD CONSTRAINT audit_subjects_seq_fkey "
            "FOREIGN KEY (seq) REFERENCES audit_records (seq)"
        )
        for statement in _INDEX_DDL:
            conn.execute(statement)

    def _window(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        start: int,
        end: int,
        columns: str,
        what: str,
    ) -> list[tuple[Any, ...]]:
        """Rows ``(seq, *columns)`` of leaves ``[start, end)`` in seq order.

        Inside a REPEATABLE READ transaction, so the pruned size and the rows come from one
        snapshot. Reads only the rows it returns: from the first stored row (leaf K), after
        the seq where a previous read stopped, or from seq ``start + 1``. A window whose seqs
        do not run on from there (rows changed by hand) is read by rank instead, as every
        read was before.

        Raises:
            AuditError: ``start`` is below the pruned size.
        """
        row = conn.execute(f"SELECT {_PRUNED_SIZE}").fetchone()
        pruned = int(row[0]) if row is not None else 0
        if start < pruned:
            raise AuditError(
                f"{what}: expected a leaf index of at least {pruned} (earlier records were "
                f"pruned under audit retention), got {start}"
            )
        limit = end - start
        if not limit:
            return []
        after = self._cursors.get(start)
        if start == pruned:
            rows = conn.execute(window_sql(columns, "first"), (limit,), binary=True).fetchall()
        elif after is not None:
            rows = conn.execute(
                window_sql(columns, "after"), (after, limit), binary=True
            ).fetchall()
        else:
            rows = conn.execute(window_sql(columns, "at"), (start, limit), binary=True).fetchall()
            seqs = [int(r[0]) for r in rows]
            if seqs != list(range(start + 1, start + 1 + len(rows))) or (
                not rows and start < self._size(conn)
            ):
                rows = conn.execute(
                    window_sql(columns, "rank"), (limit, start - pruned), binary=True
                ).fetchall()
        if rows:
            self._cursors.remember(start + len(rows), int(rows[-1][0]))
        return rows

    @staticmethod
    def _size(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
        row = conn.execute(SIZE_SQL).fetchone()
        return int(row[0]) if row is not None else 0

    @staticmethod
    def _has_additions(conn: psycopg.Connection[tuple[Any, ...]]) -> bool:
        """Whether ``audit_subjects_seq`` and ``audit_values`` exist (added without a version)."""
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_indexes "
            "WHERE schemaname = current_schema() AND indexname = %s) AND EXISTS ("
            "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = 'audit_values')",
            (_SUBJECTS_SEQ_INDEX,),
        ).fetchone()
        return bool(row is not None and row[0])

    @staticmethod
    def _schema_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
        """The stored schema version, 0 for an empty database."""
        # A query on pg_tables, not to_regclass(): the catalog cache behind to_regclass may
        # not yet know a table another opener created while we waited for the lock.
        exists = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'audit_schema')"
        ).fetchone()
        if exists is None or not exists[0]:
            return 0
        row = conn.execute("SELECT MAX(version) FROM audit_schema").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0
