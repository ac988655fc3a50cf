"""SQLite audit store: one file in the data dir, one writer and any number of readers.

WAL mode lets ``hub audit query`` read while the hub writes; writers take the lock up front
(``BEGIN IMMEDIATE``) and wait up to 30 s for it, so several router workers can share the
file too. The SQL sticks to what PostgreSQL also accepts except the ``seq`` column type and
the ``?`` placeholders.

Appends are batched (issue 16): the rows are built outside the lock, from each record's
attributes in one pass (``_prepare``); under it they are numbered and written with one
``executemany`` per table, in one transaction; a batch that meets a stored record id (a
replay: the first write stands) is taken back and written again without the ids one query
finds stored. Each record is kept once: the columns queries filter on, and its canonical
bytes packed against them (``hub.audit.packing``), with the protocol's repeated values in
``audit_values``. A read of leaves the store has just written (the audit sink's checkpoint)
takes the canonical bytes it packed for each row read back unchanged (``WrittenRows``).

Leaf numbering. Leaf i of the Merkle log is the record with the (i+1-K)-th smallest ``seq``
(K leaves pruned), but ``seq`` need not be dense: files written before schema 4 burnt an
``AUTOINCREMENT`` value on every replayed record. So each row also keeps its leaf index in
``position`` (assigned at append, unique, indexed), and every read of leaves costs what it
returns, not the size of the log: a read continues from the ``seq`` where the previous read
of this store stopped (``LeafCursors``), or starts at the row whose ``position`` is the first
leaf wanted. ``seq`` order stays the truth: rows are always read in ``seq`` order, a window
whose positions do not run on from its first leaf (rows renumbered or written by hand) is
read again by rank, and ``hub audit verify`` walks the log from its first stored row from
cursor to cursor, never by position, so it sees exactly what is stored, in that order.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from itertools import islice
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from hub.audit.packing import (
    FIELDS,
    FIELDS_2,
    INDEX_COLUMNS,
    Prepared,
    SharedValues,
    canonical_values,
    pack,
    pack_prepared,
    parts_of,
    prepare_parts,
    record_parts,
    unpack,
    unpack_checked,
)
from hub.audit.retention import PrunedPrefix
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord
from hub.sqlite_wal import enable_wal, write_transaction

__all__ = [
    "LOOKUP_CACHE_KIB",
    "SCHEMA_VERSION",
    "LeafCursors",
    "SQLiteAuditStore",
    "WrittenRows",
    "canonical_bytes",
    "configure",
    "stored_bytes",
    "stored_checkpoint",
    "usable_values",
]

#: ``PRAGMA user_version`` of the layout below; a newer file is refused, not guessed at.
#: 2: ``audit_pruned`` (audit retention). A version 1 file is upgraded when opened; a hub that
#: only knows version 1 refuses a version 2 file, since it would number the leaves of a
#: pruned log from 0 and report every checkpoint as broken.
#: 3: ``audit_records.position`` (the leaf index) and an index on ``audit_subjects (seq)``;
#: an older file gains both when opened (positions numbered in ``seq`` order from the pruned
#: size). A hub that only knows version 2 refuses a version 3 file: it would append rows
#: without a position.
#: 4: the record is kept once (issue 16: at most 1,000 bytes a record on disk, from 2,265).
#: ``canonical`` is packed against the row's columns (``hub.audit.packing``), and only the
#: columns queries filter on remain (``_COLUMNS``); ``audit_subjects`` is ``WITHOUT ROWID``
#: and the case index skips acknowledgements (no case). An older file is rebuilt in the new
#: layout when opened (``_rebuild``); a hub that knows only version 3 refuses a version 4
#: file, whose ``canonical`` it could not read.
SCHEMA_VERSION = 4
_TIMEOUT_S = 30.0
#: record ids per ``stored_ids`` statement: under SQLite's older 999-parameter limit
_IDS_CHUNK = 900
#: rows numbered per statement batch when an older file gains positions
_BACKFILL_BATCH = 10_000
#: Write-rate settings of every connection (issue 16). An append of 500 records dirties
#: about 1,400 pages once the log holds a million records: each record lands on a page of
#: its own in the ``record_id`` index, and an event's records on a few more (event, case,
#: subjects). SQLite's default page cache (2 MiB) is smaller than one such transaction, so
#: it spilled pages to the WAL mid-transaction and read index pages back from the file on
#: every insert; the cache is sized to hold a sink batch's pages (memory is only taken as
#: pages are read). The default auto-checkpoint (1,000 pages) then ran a checkpoint on every
#: commit, copying each dirty page to the database file (and syncing it) once per commit;
#: every 10,000 pages (about 40 MiB of WAL) a page dirtied by several commits is copied
#: once. Neither changes durability: with ``synchronous=FULL`` a commit is synced to the
#: WAL before it returns, whenever the WAL is checkpointed. ``journal_size_limit`` truncates
#: the WAL back after a checkpoint if a long read let it grow past that.
_CACHE_KIB = 32 * 1024
#: The page cache of a connection that only looks records up (the router's: which audit
#: messages the store holds, who received an event or a case): a point lookup reads a few
#: pages, and a router worker kept three such connections, each filling its 32 MiB as the
#: log grew (most of a worker's memory growth in a 30-minute soak). Half SQLite's default:
#: its pages are read at random as the log grows, and each filled its 2 MiB in a soak.
LOOKUP_CACHE_KIB = 1024
_AUTOCHECKPOINT_PAGES = 10_000
_WAL_LIMIT_BYTES = 64 * 1024 * 1024

#: the columns queries filter on (``hub.audit.packing.INDEX_COLUMNS``), then ``canonical``:
#: the record itself, packed against them; every other field is read from ``canonical``
_COLUMNS = (*INDEX_COLUMNS, "canonical")

# seq: append order, never reused (AUTOINCREMENT); position: the leaf index (see above).
# PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, BYTEA for canonical.
_RECORDS_DDL = """CREATE TABLE {name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    position INTEGER,
    record_id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    event_id TEXT NOT NULL,
    publisher TEXT,
    recipient TEXT,
    decision TEXT NOT NULL,
    case_pseudonym TEXT,
    canonical BLOB NOT NULL
)"""
# WITHOUT ROWID: the primary key is the table, so a subject row is stored once, not as a
# row plus its key index.
_SUBJECTS_DDL = """CREATE TABLE {name} (
    pseudonym TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES audit_records (seq),
    PRIMARY KEY (pseudonym, seq)
) WITHOUT ROWID"""
#: ``case_recipients``: through the case index, the recipient read from each row's column
_CASE_RECIPIENTS = (
    "SELECT DISTINCT recipient FROM audit_records WHERE case_pseudonym = ? "
    "AND decision = 'delivered' AND recipient IS NOT NULL"
)
_INDEX_DDL = (
    "CREATE INDEX audit_records_event_id ON audit_records (event_id)",
    "CREATE INDEX audit_records_recipient ON audit_records (recipient)",
    "CREATE INDEX audit_records_publisher ON audit_records (publisher)",
    # ``case_pseudonym = ?`` implies NOT NULL, so queries still use it; acknowledgements
    # (a third of the log) name no case and need no entry.
    "CREATE INDEX audit_records_case ON audit_records (case_pseudonym) "
    "WHERE case_pseudonym IS NOT NULL",
    "CREATE INDEX audit_records_time ON audit_records (time)",
)
_DDL = (
    _RECORDS_DDL.format(name="audit_records"),
    _SUBJECTS_DDL.format(name="audit_subjects"),
    *_INDEX_DDL,
)
# Signed checkpoints (C2SP tlog-checkpoint notes) of the Merkle log, in signing order. An
# additive table: created IF NOT EXISTS by any hub that knows it, ignored by older ones, so
# it needs no schema version bump.
_CHECKPOINT_DDL = """CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size INTEGER NOT NULL,
    note TEXT NOT NULL UNIQUE
)"""
# Schema 3: each row's leaf index, so reading leaves is an index range, not a rescan from the
# start of the log (see the module docstring). Added to version 1 and 2 files when opened.
_ADD_POSITION = "ALTER TABLE audit_records ADD COLUMN position INTEGER"
_POSITION_INDEX = "CREATE UNIQUE INDEX audit_records_position ON audit_records (position)"
_DROP_POSITION_INDEX = "DROP INDEX IF EXISTS audit_records_position"
# ``mismatched_rows`` reads the subject rows of a seq range; the primary key starts with
# the pseudonym, so without this the read scanned the whole table.
_SUBJECTS_SEQ_DDL = "CREATE INDEX IF NOT EXISTS audit_subjects_seq ON audit_subjects (seq)"
# Audit retention (``hub.audit.retention``): one row per prune. ``pruned_size`` K is
# cumulative, so leaf i is the row at position i - K in seq order; ``frontier`` holds the
# RFC 9162 compact range of [0, K) (32-byte hashes, largest subtree first) and ``proofs``
# JSON consistency proofs to K from earlier checkpoint sizes.
_PRUNED_DDL = """CREATE TABLE IF NOT EXISTS audit_pruned (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pruned_size INTEGER NOT NULL UNIQUE,
    frontier BLOB NOT NULL,
    proofs TEXT NOT NULL,
    before TEXT NOT NULL,
    pruned_at TEXT NOT NULL
)"""
#: the pruned size K as a scalar subquery, so size and offsets come from one statement
_PRUNED_SIZE = "(SELECT COALESCE(MAX(pruned_size), 0) FROM audit_pruned)"
#: the size of the Merkle tree, which is also the position of the next leaf: one past the
#: highest position (an index lookup), or K when every stored row was pruned
SIZE_SQL = (
    f"SELECT MAX({_PRUNED_SIZE}, "  # noqa: S608 - constant names
    "COALESCE((SELECT MAX(position) FROM audit_records) + 1, 0))"
)
# Rows are numbered by the store under the write lock (``append``); a batch that meets a
# record id already stored is written again without it, so a replay burns no ``seq``.
_INSERT = (
    f"INSERT INTO audit_records (seq, position, {', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES (?, ?, {', '.join('?' for _ in _COLUMNS)})"
)
#: the first try of a batch: a row whose id is stored already is skipped (and counted)
_INSERT_NEW = _INSERT + " ON CONFLICT (record_id) DO NOTHING"
_INSERT_SUBJECT = "INSERT INTO audit_subjects (pseudonym, seq) VALUES (?, ?)"
#: what a first try that met a stored id wrote (rows above the last seq before it), and
#: AUTOINCREMENT's counter as it was (``_LAST_SEQ_SQL`` of that moment: never below it)
_UNDO_ROWS = "DELETE FROM audit_records WHERE seq > ?"
_UNDO_COUNTER = "UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit_records'"
# The values of ``hub.audit.packing.SHARED`` fields, each kept once (ids referred to by the
# packed records). Never deleted: they are the protocol's words, not personal data.
_VALUES_DDL = """CREATE TABLE IF NOT EXISTS audit_values (
    id INTEGER PRIMARY KEY,
    value BLOB NOT NULL UNIQUE
)"""
_HAS_VALUES_SQL = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_values'"
_INSERT_VALUE = "INSERT INTO audit_values (id, value) VALUES (?, ?)"
_NEW_VALUES_SQL = "SELECT id, value FROM audit_values WHERE id > ? ORDER BY id"
#: the highest seq ever handed out: AUTOINCREMENT's counter (rows may have been pruned)
_LAST_SEQ_SQL = (
    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_records'), 0), "
    "COALESCE((SELECT MAX(seq) FROM audit_records), 0))"
)
#: what a read of records selects: the columns a packed ``canonical`` borrows from, then it
_READ = ", ".join(_COLUMNS)
#: the subject index rows of a seq range (``mismatched_rows``), through ``audit_subjects_seq``
SUBJECTS_SQL = "SELECT seq, pseudonym FROM audit_subjects WHERE seq BETWEEN ? AND ?"
#: the last checkpoint saved (the primary key's index, backwards: one row)
_NEWEST_CHECKPOINT_SQL = "SELECT tree_size, note FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
#: the position of the row before a seq (where a window of leaves carries on from)
_POSITION_BEFORE_SQL = "SELECT position FROM audit_records WHERE seq < ? ORDER BY seq DESC LIMIT 1"
_PRUNED_SQL = f"SELECT {_PRUNED_SIZE}"
#: a record's leaf index and seq, through the ``record_id`` unique index
RECORD_INDEX_SQL = "SELECT position, seq FROM audit_records WHERE record_id = ?"

#: how ``window_sql`` finds the first row of a window of leaves: the first row of the log
#: (``first``: leaf K), the row after a remembered seq (``after``), the row holding a
#: position (``at``), or by rank (``rank``: ``OFFSET``, the slow exact fallback)
WindowStart = Literal["first", "after", "at", "rank"]


def window_sql(columns: str, how: WindowStart) -> str:
    """A read of consecutive leaves: ``(seq, position, *columns)`` in seq order.

    Parameters: ``first``: limit; ``after``: seq, limit; ``at``: position, limit; ``rank``:
    limit, offset. Every form but ``rank`` is an index range that reads only what it returns.
    """
    select = f"SELECT seq, position, {columns} FROM audit_records"  # noqa: S608 - constant names
    where = {
        "first": "",
        "after": " WHERE seq > ?",
        "at": " WHERE seq >= (SELECT seq FROM audit_records WHERE position = ?)",
        "rank": "",
    }[how]
    tail = " ORDER BY seq LIMIT ? OFFSET ?" if how == "rank" else " ORDER BY seq LIMIT ?"
    return select + where + tail


class LeafCursors:
    """Where recent reads of leaves stopped: leaf index -> the ``seq`` of the row before it.

    Leaf i is the first row whose ``seq`` is above the remembered one. That stays true while
    records are appended (each gets a higher ``seq``) and while prefixes are pruned (kept
    records keep their leaf index), so a read that continues where the previous one stopped
    (``AuditLog`` extending its tree, ``verify`` and ``plan_prune`` walking the log) is an
    index range on ``seq`` that does not depend on ``position`` at all. Rows changed by hand
    after a read can make a cursor stale, which ``verify`` does not mind: it walks the log
    from its first stored row. Only the ends of the last few reads are kept.
    """

    def __init__(self, keep: int = 8) -> None:
        self._keep = keep
        self._after: dict[int, int] = {}

    def get(self, index: int) -> int | None:
        """The seq just before leaf ``index``, if a recent read ended there."""
        return self._after.get(index)

    def remember(self, index: int, seq: int) -> None:
        """Leaf ``index`` is the first row after ``seq`` (the last row a read returned)."""
        self._after.pop(index, None)
        self._after[index] = seq
        while len(self._after) > self._keep:
            del self._after[next(iter(self._after))]


class WrittenRows:
    """The rows a store wrote lately, each with its canonical bytes: a cheaper read-back.

    Issue 16: the audit sink signs a checkpoint every few hundred records, reading back the
    leaves it has just written; rebuilding each leaf from its packed row cost more than
    reading it. A row read back that is exactly the row written (every column and the
    packed bytes, compared whole) holds exactly the canonical bytes it was packed from, so
    those are its leaf (``unpack(pack(c)) == c``); a row changed since, or not written by
    this store, is rebuilt from what it holds now, as before. The leaf is always what the
    store holds. Each row is used once (the next read is the next leaves) and at most
    twice ``keep`` are held (the newest): what a process that writes without reading holds.
    """

    def __init__(self, keep: int = 2500) -> None:
        self._keep = keep
        self._rows: dict[int, tuple[tuple[Any, ...], bytes]] = {}

    def add(self, rows: Sequence[tuple[Any, ...]], canonical: Sequence[bytes]) -> None:
        """Rows ``(seq, position, *_COLUMNS)`` just committed, and their canonical bytes."""
        kept = self._rows
        kept.update(zip(map(itemgetter(0), rows), zip(rows, canonical, strict=True), strict=True))
        if len(kept) > 2 * self._keep:  # the newest ``keep``, in one go now and then
            self._rows = dict(islice(kept.items(), len(kept) - self._keep, None))

    def leaves(
        self, rows: Sequence[Sequence[Any]], shared: SharedValues, *, columns_at: int = 2
    ) -> list[bytes]:
        """The leaves of rows as read from the store, and as ``add`` was given them.

        Each row starts with its ``seq``, and its ``_COLUMNS`` start at ``columns_at``
        (SQLite's rows hold the position between).
        """
        written = self._rows.pop
        out = []
        for row in rows:
            mine = written(row[0], None)
            if mine is not None and mine[0] == row:
                out.append(mine[1])
            else:
                out.append(leaf(row[columns_at:], shared))
        return out


def canonical_bytes(record: AuditRecord) -> bytes:
    """The record as sorted, compact JSON: what the Merkle log will hash as a leaf."""
    return _prepare(record)[1]


def _utc_text(value: datetime) -> str:
    """Fixed-width UTC ISO 8601, so text order is time order (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _row(record: AuditRecord, shared: SharedValues | None = None) -> tuple[Any, ...]:
    """The stored values of ``_COLUMNS`` for a record (``canonical`` packed)."""
    columns, canonical, values = _prepare(record)
    return (*columns, _pack(canonical, values, columns, shared))


def _pack(
    canonical: bytes,
    values: Prepared | None,
    columns: tuple[Any, ...],
    shared: SharedValues | None,
) -> bytes:
    if values is None:
        return pack(canonical, columns, shared)
    return pack_prepared(values, shared)


#: where both formats keep ``time``, whose text ``record_parts`` writes only as ``"<iso>Z"``
_TIME_TEXT = -1
#: whether ``AuditRecord`` has exactly packing format 2's fields (and ``time`` last in both
#: formats), so that a record's attributes give its canonical form without a ``model_dump``
_BY_ATTRIBUTES = (
    frozenset(AuditRecord.model_fields) == frozenset(FIELDS_2)
    and FIELDS[_TIME_TEXT] == FIELDS_2[_TIME_TEXT] == "time"
)


def _prepare(record: AuditRecord) -> tuple[tuple[Any, ...], bytes, Prepared | None]:
    """The ``INDEX_COLUMNS`` values, the canonical bytes and its packing but the references.

    From the record's attributes in one pass (issue 16: the dump, the JSON of each value and
    the packing cost the sink 15 us a record), or, for what that pass does not write, from
    ``model_dump``: the same bytes either way. Packing waits for the write lock, where the
    store's shared values are current.
    """
    if _BY_ATTRIBUTES and type(record) is AuditRecord:
        attrs = record.__dict__
        parts = record_parts(attrs)
        if parts is not None:
            decision = attrs["decision"]
            columns = _index_columns(
                record,
                # ``_utc_text`` of a UTC time: ``packing.time_string``'s reverse, inline (a
                # call a record on the append path slowed this function 1-2%)
                parts[_TIME_TEXT][1:-2] + "+00:00",
                decision.value if isinstance(decision, Enum) else decision,
            )
            # the text columns are the record's values that ``parts`` wrote
            prepared = prepare_parts(parts, columns, borrowed=True)
            return columns, prepared.canonical, prepared
    columns, canonical, values = dumped_parts(record)
    if values is None:
        return columns, canonical, None
    return columns, canonical, prepare_parts(parts_of(values), columns)


def dumped_parts(record: AuditRecord) -> tuple[tuple[Any, ...], bytes, list[bytes] | None]:
    """``_prepare``'s columns and canonical bytes by ``model_dump``, and the fields' JSON.

    The reference the one pass is held to (``tests/unit/test_audit_prepare.py``), and the way
    for anything the one pass does not write.
    """
    dumped = record.model_dump(mode="json")
    canonical, values = canonical_values(dumped)
    columns = _index_columns(record, _utc_text(record.time), dumped["decision"])
    return columns, canonical, values


def _index_columns(record: AuditRecord, time: str, decision: str) -> tuple[Any, ...]:
    """The ``INDEX_COLUMNS`` values of a record, given its time's text and its decision's."""
    return (
        record.record_id,
        time,
        record.event_id,
        record.publisher,
        record.recipient,
        decision,
        record.case_pseudonym,
    )


def stored_bytes(value: Any) -> bytes | None:
    """A ``canonical`` value as the stores write it (a BLOB, a BYTEA), else ``None``.

    Anything else (text, a number: a column changed to another type by hand) is tampering.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return None


def stored_checkpoint(size: Any, note: Any) -> tuple[int, str]:
    """A checkpoint row as read, whatever was done to it: ``(tree size, note)``.

    A size that is not an integer reads as -1 and a note that is not text as its repr
    (which is no signed note), so ``verify`` reports the row instead of failing on it.
    """
    return (size if type(size) is int else -1), (note if type(note) is str else repr(note))


def usable_values(rows: Iterable[Sequence[Any]]) -> list[tuple[int, bytes]]:
    """The ``audit_values`` rows ``(id, value)`` of the types the stores write.

    A value changed to another type by hand is left out: the rows that refer to it then do
    not unpack, and ``verify`` reports each of them instead of failing on the table.
    """
    usable = []
    for ident, value in rows:
        data = stored_bytes(value)
        if type(ident) is int and data is not None:
            usable.append((ident, data))
    return usable


def _well_typed(columns: Sequence[Any]) -> bool:
    """Whether every index column holds text or NULL, as the stores write them."""
    return all(column is None or type(column) is str for column in columns)


def _odd_leaf(value: Any) -> bytes:
    """The leaf of a row whose ``canonical`` is not bytes: its text, or its repr.

    Never the record's canonical bytes, so the root changes as it would for any other edit.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return repr(value).encode()


def row_faults(
    rows: Sequence[Sequence[Any]], subjects: dict[int, set[Any]], shared: SharedValues
) -> tuple[list[bytes], list[int]]:
    """Leaves and the offsets of inconsistent rows among ``(seq, *_COLUMNS)`` rows.

    A row is consistent when its ``canonical`` unpacks against its columns with the CRC
    written with it (every column it borrows from is then exactly what the record says), the
    columns it does not borrow from are what the record gives, and its subject index rows are
    the pseudonyms the record names. Rows kept as plain JSON (written by hand or not packable)
    are checked the long way: parsed as an ``AuditRecord`` and every column re-derived. The
    leaf of a row is its canonical bytes as far as they can be rebuilt, else the stored bytes.
    A value of another type than the store writes (a BLOB where text belongs, text where the
    record's bytes belong) makes the row inconsistent; it never stops the check.
    """
    leaves: list[bytes] = []
    faults: list[int] = []
    for offset, (seq, *stored) in enumerate(rows):
        columns, blob = stored[:-1], stored_bytes(stored[-1])
        if blob is None or not _well_typed(columns):
            leaves.append(_odd_leaf(stored[-1]) if blob is None else blob)
            faults.append(offset)
            continue
        canonical, named = unpack_checked(blob, columns, shared)
        if canonical is None:
            leaves.append(unpack(blob, columns, shared, check=False) or blob)
            faults.append(offset)
            continue
        leaves.append(canonical)
        if named is None:
            ok = _consistent_the_long_way(canonical, tuple(columns), subjects.get(seq, set()))
        else:
            ok = named == subjects.get(seq, set())
        if not ok:
            faults.append(offset)
    return leaves, faults


def leaf(row: Sequence[Any], shared: SharedValues) -> bytes:
    """The leaf of a row of ``_COLUMNS``: its canonical bytes as the row gives them now.

    The stored bytes if they cannot be rebuilt; either way a changed row changes the root.
    """
    blob = stored_bytes(row[-1])
    if blob is None:
        return _odd_leaf(row[-1])
    if not _well_typed(row[:-1]):
        return blob
    return unpack(blob, row[:-1], shared, check=False) or blob


def _record(row: Sequence[Any], where: str, shared: SharedValues) -> AuditRecord:
    """The record a row of ``_READ`` holds (rebuilt even if the row was changed since).

    Raises:
        AuditError: the stored bytes cannot be read at all.
    """
    blob = stored_bytes(row[-1])
    canonical = None
    if blob is not None and (_well_typed(row[:-1]) or blob[:1] == b"{"):
        canonical = unpack(blob, row[:-1], shared, check=False)
    try:
        if canonical is None:
            raise ValueError("the stored record bytes do not decode")
        return AuditRecord.model_validate_json(canonical)
    except ValueError as exc:
        raise AuditError(
            f"audit store {where}: record {row[0]} is damaged ({exc}); run `hub audit verify`"
        ) from exc


def _packer(shared: SharedValues) -> Callable[..., bytes]:
    """``hub_pack(canonical, <INDEX_COLUMNS>)`` for ``_rebuild``: the row's packed bytes."""

    def pack_sql(canonical: bytes | str, *columns: str | None) -> bytes:
        data = canonical.encode() if isinstance(canonical, str) else bytes(canonical)
        return pack(data, columns, shared)

    return pack_sql


def _consistent_the_long_way(
    canonical: bytes, columns: tuple[Any, ...], subjects: set[str]
) -> bool:
    try:
        record = AuditRecord.model_validate_json(canonical)
    except ValueError:
        return False
    row, again, _ = _prepare(record)
    return row == columns and again == canonical and set(record.subject_pseudonyms) == subjects


def configure(conn: sqlite3.Connection, *, cache_kib: int = _CACHE_KIB) -> None:
    """A store connection's settings, after ``enable_wal`` (the bench's SQLite floor too)."""
    # FULL: a committed audit record survives power loss, not just a crash.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    # statement journals and sorts in memory: in a temp file (the default) every append
    # spilled its statement journal to /var/tmp, tens of writes an event
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT_BYTES}")


class SQLiteAuditStore:
    """``AuditStore`` over one SQLite file (see the module docstring for concurrency).

    One connection per instance, guarded by a lock so a thread pool may share it.
    """

    def __init__(
        self, path: Path, *, busy_timeout: float = _TIMEOUT_S, cache_kib: int = _CACHE_KIB
    ) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cursors = LeafCursors()
        self._shared = SharedValues()
        self._written = WrittenRows()
        with self._guard("open"):
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN ourselves, so transactions are explicit.
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                enable_wal(self._conn, within=busy_timeout)
                configure(self._conn, cache_kib=cache_kib)
                self._migrate()
            except BaseException:
                self._conn.close()
                raise

    def __repr__(self) -> str:
        return f"SQLiteAuditStore({str(self.path)!r})"

    def __enter__(self) -> SQLiteAuditStore:
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

        The rows are built before the write lock is taken. Under it they are numbered
        (``seq`` and ``position`` on from the last ones, densely, in commit order) and
        written with one ``executemany`` per table: no statement per record. A replay (an id
        already stored: the first write stands) shows as a row not inserted; the batch is
        then written again without the ids one query finds stored, so no number is skipped.

        Returns:
            How many records were newly stored.
        """
        rows = {}
        for r in records:
            if r.record_id not in rows:  # the first of a batch's duplicates stands
                rows[r.record_id] = (_prepare(r), tuple(dict.fromkeys(r.subject_pseudonyms)))
        if not rows:
            return 0
        with self._lock, self._guard("append"):
            try:
                with self._write():
                    self._refresh_shared()
                    packed = {
                        record_id: _pack(canonical, values, columns, self._shared)
                        for record_id, ((columns, canonical, values), _) in rows.items()
                    }
                    (position,) = self._conn.execute(SIZE_SQL).fetchone()
                    (seq,) = self._conn.execute(_LAST_SEQ_SQL).fetchone()

                    def numbered() -> list[tuple[Any, ...]]:
                        return [
                            (seq + i, position + i - 1, *rows[rid][0][0], packed[rid])
                            for i, rid in enumerate(rows, 1)
                        ]

                    inserted = numbered()
                    written = self._conn.executemany(_INSERT_NEW, inserted).rowcount
                    if written != len(rows):
                        # A replay: take back the rows just written (every row above
                        # ``seq``) and AUTOINCREMENT's counter, and write the batch again
                        # without the stored ids, so no number is skipped. Not a savepoint
                        # around the insert: SQLite then copies every page the insert
                        # touches to a sub-journal, 6 us a record (issue 16), for a case
                        # only replays meet.
                        self._conn.execute(_UNDO_ROWS, (seq,))
                        self._conn.execute(_UNDO_COUNTER, (seq,))
                        for stored in self._stored(list(rows)):
                            del rows[stored]
                        inserted = numbered()
                        self._conn.executemany(_INSERT, inserted)
                    self._conn.executemany(_INSERT_VALUE, self._shared.new_rows())
                    self._conn.executemany(
                        _INSERT_SUBJECT,
                        [
                            (pseudonym, seq + i)
                            for i, (_, subjects) in enumerate(rows.values(), 1)
                            for pseudonym in subjects
                        ],
                    )
            except BaseException:
                self._shared.discard()
                raise
            self._shared.commit()
            self._written.add(inserted, [canonical for (_, canonical, _), _ in rows.values()])
        return len(rows)

    def _refresh_shared(self) -> None:
        """Learn the shared values other writers added since this store last read them."""
        self._shared.learn(usable_values(self._conn.execute(_NEW_VALUES_SQL, (self._shared.last,))))

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
            clauses.append("event_id = ?")
            params.append(event_id)
        if party is not None:
            clauses.append("(recipient = ? OR publisher = ?)")
            params += [party, party]
        if subject_pseudonym is not None:
            clauses.append("seq IN (SELECT seq FROM audit_subjects WHERE pseudonym = ?)")
            params.append(subject_pseudonym)
        if case_pseudonym is not None:
            clauses.append("case_pseudonym = ?")
            params.append(case_pseudonym)
        if decision is not None:
            clauses.append("decision = ?")
            params.append(AuditDecision(decision).value)
        if since is not None:
            clauses.append("time >= ?")
            params.append(_utc_text(since))
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        sql = f"SELECT {_READ} FROM audit_records {where}ORDER BY seq LIMIT ?"  # noqa: S608
        with self._lock, self._guard("query"), self._read():
            rows = self._conn.execute(sql, [*params, limit]).fetchall()
            self._refresh_shared()
        return [_record(row, str(self.path), self._shared) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of records per decision, every decision present (zero if none)."""
        result = {d.value: 0 for d in AuditDecision}
        with self._lock, self._guard("count"):
            rows = self._conn.execute(
                "SELECT decision, COUNT(*) FROM audit_records GROUP BY decision"
            ).fetchall()
        result.update({str(decision): int(n) for decision, n in rows})
        return result

    def has_event(self, event_id: str) -> bool:
        """Whether any record about this event is stored."""
        with self._lock, self._guard("query"):
            row = self._conn.execute(
                "SELECT 1 FROM audit_records WHERE event_id = ? LIMIT 1", (event_id,)
            ).fetchone()
        return row is not None

    def case_recipients(self, case_pseudonym: str) -> set[str]:
        """The parties delivered any event of the case (see ``AuditStore``)."""
        with self._lock, self._guard("query"):
            rows = self._conn.execute(_CASE_RECIPIENTS, (case_pseudonym,)).fetchall()
        return {str(row[0]) for row in rows}

    def stored_ids(self, record_ids: Sequence[str]) -> set[str]:
        """Which of these record ids the store holds (see ``AuditStore``).

        Chunks of ``_IDS_CHUNK`` ids inside one read transaction (one WAL snapshot).
        """
        wanted = list(dict.fromkeys(record_ids))
        if not wanted:
            return set()
        with self._lock, self._guard("query"), self._read():
            return self._stored(wanted)

    def _stored(self, record_ids: list[str]) -> set[str]:
        """``stored_ids`` inside the caller's transaction (ids distinct)."""
        found: set[str] = set()
        for i in range(0, len(record_ids), _IDS_CHUNK):
            chunk = record_ids[i : i + _IDS_CHUNK]
            sql = (
                "SELECT record_id FROM audit_records "  # noqa: S608 - placeholders only
                f"WHERE record_id IN ({', '.join('?' for _ in chunk)})"
            )
            found.update(row[0] for row in self._conn.execute(sql, chunk))
        return found

    def size(self) -> int:
        """Leaves pruned plus records stored: the size of the Merkle tree (see ``AuditStore``).

        One past the highest ``position``: an index lookup, not a count of the rows.
        """
        with self._lock, self._guard("count"):
            (n,) = self._conn.execute(SIZE_SQL).fetchone()
        return int(n)

    def leaves(self, start: int, end: int) -> list[bytes]:
        """Canonical bytes of leaves ``start`` .. ``end - 1``, append order (see ``AuditStore``)."""
        if not 0 <= start <= end:
            raise AuditError(f"audit leaves: expected 0 <= start <= end, got {start}, {end}")
        with self._lock, self._guard("read"), self._read():
            rows = self._window(start, end, _READ, "audit leaves")
            self._refresh_shared()
            return self._written.leaves(rows, self._shared)

    def checked_leaves(self, start: int, end: int) -> tuple[list[bytes], list[int]]:
        """``leaves`` and ``mismatched_rows`` of one window, from one read (see ``AuditStore``)."""
        if not 0 <= start <= end:
            raise AuditError(f"audit leaves: expected 0 <= start <= end, got {start}, {end}")
        with self._lock, self._guard("read"), self._read():
            rows = self._window(start, end, _READ, "audit leaves")
            self._refresh_shared()
            subjects: dict[int, set[Any]] = {}
            previous: Any = None
            if rows:
                for seq, pseudonym in self._conn.execute(SUBJECTS_SQL, (rows[0][0], rows[-1][0])):
                    subjects.setdefault(seq, set()).add(pseudonym)
                before = self._conn.execute(_POSITION_BEFORE_SQL, (rows[0][0],)).fetchone()
                (pruned,) = self._conn.execute(_PRUNED_SQL).fetchone()
                previous = before[0] if before else pruned - 1 if type(pruned) is int else None
        leaves, faults = row_faults([(row[0], *row[2:]) for row in rows], subjects, self._shared)
        for offset, position in enumerate(row[1] for row in rows):
            # A row's position is its leaf index, and one past the row before it (the
            # pruned size for the first row). A row removed, inserted or moved by hand, or a
            # position edited, breaks both at the row where it happened; the rows after a
            # removal still run on from the row before them, so they are not reported too.
            if type(position) is not int or (
                position != start + offset
                and (type(previous) is not int or position != previous + 1)
            ):
                faults.append(offset)
            previous = position
        return leaves, [start + offset for offset in sorted(set(faults))]

    def record_index(self, record_id: str) -> int | None:
        """Leaf index of a record (0-based, append order), or ``None`` if not stored."""
        with self._lock, self._guard("query"):
            row = self._conn.execute(RECORD_INDEX_SQL, (record_id,)).fetchone()
            if row is None:
                return None
            if row[0] is not None:
                return int(row[0])
            # No position (a row written behind the store's back): count, as before schema 3.
            (index,) = self._conn.execute(
                f"SELECT {_PRUNED_SIZE} + (SELECT COUNT(*) FROM audit_records "  # noqa: S608
                "WHERE seq < ?)",
                (row[1],),
            ).fetchone()
        return int(index)

    def prunes(self) -> list[PrunedPrefix]:
        """Every prune so far, oldest first (see ``AuditStore``)."""
        with self._lock, self._guard("read prunes"):
            rows = self._conn.execute(
                "SELECT pruned_size, frontier, proofs, before, pruned_at FROM audit_pruned "
                "ORDER BY pruned_size"
            ).fetchall()
        return [
            PrunedPrefix.from_stored(
                size=int(size),
                frontier=bytes(frontier),
                proofs=str(proofs),
                before=datetime.fromisoformat(before),
                pruned_at=datetime.fromisoformat(pruned_at),
            )
            for size, frontier, proofs, before, pruned_at in rows
        ]

    def prune(self, prefix: PrunedPrefix) -> int:
        """Delete the rows of leaves below ``prefix.size`` and keep ``prefix`` (see ``AuditStore``).

        ``secure_delete`` zeroes the freed content in the file, and a truncating WAL
        checkpoint afterwards copies the zeroed pages back and empties the WAL, so the
        records' bytes do not linger on disk (backups of the file are another matter).
        """
        with self._lock, self._guard("prune"), self._foreign_keys_off():
            self._conn.execute("PRAGMA secure_delete = ON")
            with self._write():
                (pruned,) = self._conn.execute(f"SELECT {_PRUNED_SIZE}").fetchone()
                (stored,) = self._conn.execute("SELECT COUNT(*) FROM audit_records").fetchone()
                count = prefix.size - int(pruned)
                if not 0 < count <= int(stored):
                    raise AuditError(
                        f"audit prune: expected a size in {int(pruned) + 1}..{int(pruned) + stored}"
                        f", got {prefix.size}"
                    )
                doomed = "SELECT seq FROM audit_records ORDER BY seq LIMIT ?"
                self._conn.execute(
                    f"DELETE FROM audit_subjects WHERE seq IN ({doomed})",  # noqa: S608
                    (count,),
                )
                self._conn.execute(
                    f"DELETE FROM audit_records WHERE seq IN ({doomed})",  # noqa: S608
                    (count,),
                )
                self._conn.execute(
                    "INSERT INTO audit_pruned (pruned_size, frontier, proofs, before, pruned_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (
                        prefix.size,
                        prefix.frontier_bytes(),
                        prefix.proofs_json(),
                        _utc_text(prefix.before),
                        _utc_text(prefix.pruned_at),
                    ),
                )
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def mismatched_rows(self, start: int, end: int) -> list[int]:
        """Leaf indices in ``[start, end)`` whose columns disagree with their canonical bytes.

        The Merkle log hashes only ``canonical``; queries and reports read the other columns
        and ``audit_subjects``. A row is consistent when re-deriving every column (and the
        subject index) from the record in ``canonical`` gives back exactly what is stored, so
        a hand edit of any column, or of ``canonical`` alone, is found at its own index.
        """
        if not 0 <= start <= end:
            raise AuditError(f"audit rows: expected 0 <= start <= end, got {start}, {end}")
        return self.checked_leaves(start, end)[1]

    def save_checkpoint(self, tree_size: int, note: str) -> None:
        """Keep a signed checkpoint note of the tree at ``tree_size`` (see ``AuditStore``)."""
        with self._lock, self._guard("save checkpoint"), self._write():
            self._conn.execute(
                "INSERT INTO audit_checkpoints (tree_size, note) VALUES (?, ?) "
                "ON CONFLICT (note) DO NOTHING",
                (tree_size, note),
            )

    def checkpoints(self) -> list[tuple[int, str]]:
        """Every saved checkpoint as ``(tree_size, note)``, in the order saved."""
        with self._lock, self._guard("read checkpoints"):
            rows = self._conn.execute(
                "SELECT tree_size, note FROM audit_checkpoints ORDER BY id"
            ).fetchall()
        return [stored_checkpoint(size, note) for size, note in rows]

    def newest_checkpoint(self) -> tuple[int, str] | None:
        """The last checkpoint saved, or ``None`` (see ``AuditStore``)."""
        with self._lock, self._guard("read checkpoints"):
            row = self._conn.execute(_NEWEST_CHECKPOINT_SQL).fetchone()
        return None if row is None else stored_checkpoint(*row)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn sqlite3 and file errors into ``AuditError`` naming the file."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise AuditError(f"audit store {self.path}: cannot {action}: {exc}") from exc

    def _window(self, start: int, end: int, columns: str, what: str) -> list[Any]:
        """Rows ``(seq, position, *columns)`` of leaves ``[start, end)`` in seq order.

        Inside ``_read``, so the pruned size and the rows come from one snapshot. Reads only
        the rows it returns: from the first stored row (leaf K), after the seq where a
        previous read stopped, or from the row holding position ``start``. Positions that
        do not run on from ``start`` (rows changed by hand) are not trusted: the window is
        then read by rank, as every read was before schema 3.

        Raises:
            AuditError: ``start`` is below the pruned size.
        """
        (pruned,) = self._conn.execute(f"SELECT {_PRUNED_SIZE}").fetchone()
        if start < int(pruned):
            raise AuditError(
                f"{what}: expected a leaf index of at least {pruned} (earlier records were "
                f"pruned under audit retention), got {start}"
            )
        limit = end - start
        if not limit:
            return []
        after = self._cursors.get(start)
        if start == int(pruned):
            rows = self._conn.execute(window_sql(columns, "first"), (limit,)).fetchall()
        elif after is not None:
            rows = self._conn.execute(window_sql(columns, "after"), (after, limit)).fetchall()
        else:
            rows = self._conn.execute(window_sql(columns, "at"), (start, limit)).fetchall()
            positions = [row[1] for row in rows]
            if positions != list(range(start, start + len(rows))) or (
                not rows and start < self._conn.execute(SIZE_SQL).fetchone()[0]
            ):
                rows = self._conn.execute(
                    window_sql(columns, "rank"), (limit, start - int(pruned))
                ).fetchall()
        if rows:
            self._cursors.remember(start + len(rows), rows[-1][0])
        return rows

    @contextmanager
    def _foreign_keys_off(self) -> Iterator[None]:
        """Skip foreign key checks (set outside a transaction, as SQLite requires).

        For ``prune`` only: it deletes the subject rows first, so nothing dangles. Before
        schema 3 ``audit_subjects`` had no index on ``seq`` alone, and checking each deleted
        record scanned it once per record (10,000 records took seconds, not milliseconds).
        """
        self._conn.execute("PRAGMA foreign_keys = OFF")
        try:
            yield
        finally:
            self._conn.execute("PRAGMA foreign_keys = ON")

    @contextmanager
    def _read(self) -> Iterator[None]:
        """One read transaction: a WAL snapshot, so a concurrent prune cannot shift offsets."""
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[None]:
        with write_transaction(self._conn):  # a failed COMMIT rolls back too
            yield

    def _migrate(self) -> None:
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION and self._conn.execute(_HAS_VALUES_SQL).fetchone():
            return  # readers never take the write lock once the schema exists
        # Foreign keys off (only settable outside a transaction): ``_rebuild`` drops the old
        # tables while the new subject rows already point at ``audit_records``.
        with self._foreign_keys_off(), self._write():
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            self._conn.execute(_VALUES_DDL)  # early version 4 files lack it
            if version == SCHEMA_VERSION:
                return  # another opener upgraded it while we waited for the lock
            if version == 0:
                for statement in _DDL:
                    self._conn.execute(statement)
            elif version > SCHEMA_VERSION:
                raise AuditError(
                    f"audit store {self.path}: expected schema version {SCHEMA_VERSION}, "
                    f"got {version} (written by a newer hub?)"
                )
            # From 0 or 1: a version 1 file may predate audit_checkpoints, and lacks
            # audit_pruned; both statements are IF NOT EXISTS.
            self._conn.execute(_CHECKPOINT_DDL)
            self._conn.execute(_PRUNED_DDL)
            # From 0, 1 or 2: positions (numbered after the pruned prefix) and the seq index.
            # Numbered afresh even if the column exists (a file set back to an older version
            # by hand), without the unique index while renumbering.
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(audit_records)")}
            if "position" not in columns:
                self._conn.execute(_ADD_POSITION)
            self._conn.execute(_DROP_POSITION_INDEX)
            self._number_positions()
            self._conn.execute(_POSITION_INDEX)
            self._conn.execute(_SUBJECTS_SEQ_DDL)
            if version != 0:
                self._rebuild()
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _rebuild(self) -> None:
        """Copy a version 1-3 file's records into the version 4 layout (once, when opened).

        Every row keeps its ``seq`` and ``position``; ``canonical`` is packed against the
        columns kept, and the columns dropped are gone: the record in ``canonical`` is what
        queries read now. A row whose kept columns disagreed with ``canonical`` still does
        (such values are kept inline, and ``hub audit verify`` reports the row). The freed
        pages are reused by later appends; ``VACUUM`` gives them back to the file system.
        """
        (last,) = self._conn.execute(_LAST_SEQ_SQL).fetchone()
        self._refresh_shared()
        self._conn.create_function("hub_pack", 1 + len(INDEX_COLUMNS), _packer(self._shared))
        self._conn.execute(_RECORDS_DDL.format(name="audit_records_new"))
        self._conn.execute(_SUBJECTS_DDL.format(name="audit_subjects_new"))
        kept = ", ".join(INDEX_COLUMNS)
        self._conn.execute(
            f"INSERT INTO audit_records_new (seq, position, {', '.join(_COLUMNS)}) "  # noqa: S608
            f"SELECT seq, position, {kept}, hub_pack(canonical, {kept}) FROM audit_records "
            "ORDER BY seq"
        )
        self._conn.executemany(_INSERT_VALUE, self._shared.new_rows())
        self._shared.commit()  # if the upgrade fails the store is not opened at all
        self._conn.execute(
            "INSERT INTO audit_subjects_new (pseudonym, seq) "
            "SELECT DISTINCT pseudonym, seq FROM audit_subjects"
        )
        self._conn.execute("DROP TABLE audit_subjects")
        self._conn.execute("DROP TABLE audit_records")
        self._conn.execute("ALTER TABLE audit_records_new RENAME TO audit_records")
        self._conn.execute("ALTER TABLE audit_subjects_new RENAME TO audit_subjects")
        # AUTOINCREMENT never reuses a seq, even one burnt by a replay or pruned away.
        self._conn.execute("DELETE FROM sqlite_sequence WHERE name = 'audit_records'")
        if last:
            self._conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_records', ?)", (last,)
            )
        for statement in (*_INDEX_DDL, _POSITION_INDEX, _SUBJECTS_SEQ_DDL):
            self._conn.execute(statement)

    def _number_positions(self) -> None:
        """Give every row its leaf index, K plus its rank in seq order (once, when upgrading).

        In batches by seq, before the unique index exists, so a large file is numbered in
        one pass of primary key lookups.
        """
        (position,) = self._conn.execute(f"SELECT {_PRUNED_SIZE}").fetchone()
        last: int | None = None
        while True:
            if last is None:
                batch = self._conn.execute(
                    "SELECT seq FROM audit_records ORDER BY seq LIMIT ?", (_BACKFILL_BATCH,)
                ).fetchall()
            else:
                batch = self._conn.execute(
                    "SELECT seq FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, _BACKFILL_BATCH),
                ).fetchall()
            if not batch:
                return
            self._conn.executemany(
                "UPDATE audit_records SET position = ? WHERE seq = ?",
                [(position + i, seq) for i, (seq,) in enumerate(batch)],
            )
            position += len(batch)
            last = batch[-1][0]
