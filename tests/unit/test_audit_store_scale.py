"""Reading Merkle leaves costs what it returns, not the size of the log, on both stores.

Checkpoint signing reads the new leaves at the end of the log, ``hub audit verify`` walks it
in batches and proofs look a record up by id. Before schema 3 each of those rescanned the
log from its start (``LIMIT ? OFFSET ?``, ``COUNT(*)``) or scanned ``audit_subjects``; these
tests pin the query plans, count the work a read does at two log sizes, check that a file
written by the version 2 layout is upgraded to the same leaves, roots and proofs, and that
pruning, verifying and proving still agree on every leaf index.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import hub.audit.log
from hub.audit import postgres as pg
from hub.audit import sqlite as lite
from hub.audit.checkpoint import Checkpoint
from hub.audit.log import AuditLog
from hub.audit.merkle import MerkleTree, leaf_hash, verify_inclusion
from hub.audit.retention import PrunedPrefix
from hub.audit.sqlite import SQLiteAuditStore, WindowStart, canonical_bytes
from hub.audit.store import AuditStore
from hub.errors import AuditError, AuditIntegrityError
from hub.models import AuditRecord
from tests.unit.conftest import NO_PG, Opener
from tests.unit.test_audit_log import SIGNER, T0, record

ALL_COLUMNS = ", ".join(lite._COLUMNS)


def fill(store: AuditStore, n: int, *, replay_every: int = 7) -> list[AuditRecord]:
    """Append records 0..n-1 in batches, replaying one now and then (SQLite burns a seq)."""
    records = [record(i) for i in range(n)]
    for start in range(0, n, 500):
        batch = records[start : start + 500]
        replays = [records[i] for i in range(start, start + len(batch), replay_every)]
        store.append(batch)
        store.append(replays)
    return records


# --- query plans: every read of leaves, subjects, sizes and indices uses an index ----------


def sqlite_plan(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[str]:
    return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_sqlite_reads_search_indexes_never_scan(tmp_path: Path) -> None:
    with SQLiteAuditStore(tmp_path / "audit.sqlite3") as store:
        fill(store, 50)
        conn = store._conn
        reads = {
            "leaves after a cursor": (lite.window_sql("canonical", "after"), (10, 5)),
            "leaves at a position": (lite.window_sql("canonical", "at"), (10, 5)),
            "rows after a cursor": (lite.window_sql(ALL_COLUMNS, "after"), (10, 5)),
            "rows at a position": (lite.window_sql(ALL_COLUMNS, "at"), (10, 5)),
            "subjects of a seq range": (lite.SUBJECTS_SQL, (10, 20)),
            "record index": (lite.RECORD_INDEX_SQL, ("x",)),
            "size": (lite.SIZE_SQL, ()),
        }
        plans = {name: sqlite_plan(conn, sql, params) for name, (sql, params) in reads.items()}
    for name, plan in plans.items():
        scans = [s for s in plan if s.startswith("SCAN") and s != "SCAN CONSTANT ROW"]
        assert not scans, (name, plan)
        assert any(step.startswith("SEARCH") for step in plan), (name, plan)
    assert any("audit_subjects_seq" in step for step in plans["subjects of a seq range"])
    assert any("audit_records_position" in step for step in plans["leaves at a position"])
    assert any("audit_records_position" in step for step in plans["size"])


def pg_plan(url: str, sql: str, params: tuple[Any, ...]) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # tiny tables: plan as for a big one
        rows = conn.execute(f"EXPLAIN {sql}".encode(), params).fetchall()
    return "\n".join(str(row[0]) for row in rows)


@NO_PG
def test_pg_reads_use_indexes_never_scan(postgres_url: str) -> None:
    with pg.PostgresAuditStore(postgres_url) as store:
        fill(store, 50)
    reads = {
        "leaves after a cursor": (pg.window_sql("canonical", "after"), (10, 5)),
        "leaves at a leaf index": (pg.window_sql("canonical", "at"), (10, 5)),
        "rows after a cursor": (pg.window_sql(ALL_COLUMNS, "after"), (10, 5)),
        "subjects of a seq range": (pg.SUBJECTS_SQL, (10, 20)),
        "record index": (pg.RECORD_INDEX_SQL, ("x",)),
        "size": (pg.SIZE_SQL, ()),
    }
    plans = {name: pg_plan(postgres_url, sql, params) for name, (sql, params) in reads.items()}
    for name, plan in plans.items():
        assert "Seq Scan" not in plan, (name, plan)
        assert "Index" in plan, (name, plan)
    assert "audit_subjects_seq" in plans["subjects of a seq range"]
    assert "audit_records_pkey" in plans["leaves after a cursor"]


@NO_PG
def test_pg_tail_read_touches_only_the_rows_it_returns(postgres_url: str) -> None:
    """EXPLAIN ANALYZE of the read a checkpoint makes: 10 leaves at the end of 2,000."""
    with pg.PostgresAuditStore(postgres_url) as store:
        fill(store, 2000)
        assert store.size() == 2000
    starts: tuple[WindowStart, ...] = ("after", "at")
    for how in starts:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            row = conn.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {pg.window_sql('canonical', how)}".encode(),
                (1990, 10),
            ).fetchone()
        assert row is not None
        plan = row[0]
        scanned = []
        nodes = [plan[0]["Plan"]]
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("Plans", []))
            if "Scan" in node["Node Type"]:
                scanned.append(node["Actual Rows"])
        assert scanned == [10], (how, json.dumps(plan))


# --- work per read at two sizes of the log -------------------------------------------------


class Steps:
    """Counts SQLite virtual machine instructions run on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.count = 0
        conn.set_progress_handler(self._tick, 1)

    def _tick(self) -> int:
        self.count += 1
        return 0

    def of(self, call: Callable[[], object]) -> int:
        before = self.count
        call()
        return self.count - before


def read_costs(path: Path, n: int) -> dict[str, int]:
    """Instructions for each read at the end of a log of n records, on a fresh connection."""
    with SQLiteAuditStore(path) as store:
        fill(store, n)
    with SQLiteAuditStore(path) as store:
        steps = Steps(store._conn)
        last = record(n - 1).record_id
        costs = {
            "size": steps.of(store.size),
            "record_index": steps.of(lambda: store.record_index(last)),
            "leaves at a position": steps.of(lambda: store.leaves(n - 10, n)),
            "leaves after a cursor": steps.of(lambda: store.leaves(n, n + 10)),
            "mismatched_rows at a position": steps.of(lambda: store.mismatched_rows(n - 20, n)),
        }
        store.append([record(n)])
        costs["append"] = steps.of(lambda: store.append([record(n + 1)]))
        costs["leaves after a cursor"] += steps.of(lambda: store.leaves(n, n + 10))
        assert store.leaves(n - 2, n + 2) == [
            canonical_bytes(record(i)) for i in range(n - 2, n + 2)
        ]
    with SQLiteAuditStore(path) as store:  # a fresh one, as ``hub audit verify`` opens it
        steps = Steps(store._conn)
        report = AuditLog(store, signer=SIGNER).verify()
        assert (report.ok, report.size) == (True, n + 2)
        costs["verify, per 100 records"] = steps.count * 100 // n
    return costs


def test_sqlite_reads_cost_the_same_at_1k_and_8k_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.audit.log, "_BATCH", 100)  # many batches: a rescan would show
    small = read_costs(tmp_path / "small.sqlite3", 1000)
    large = read_costs(tmp_path / "large.sqlite3", 8000)
    for name, cost in small.items():
        # O(log n) index descents may add a little; a rescan would be 8 times the work.
        assert large[name] < 1.5 * cost + 200, (name, cost, large[name])


# --- leaf numbering agrees with seq order, with gaps in seq and after prunes ----------------


def ranks(store: AuditStore, location: str) -> list[str]:
    """Record ids of the stored rows in seq order, read behind the store's back."""
    if location.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(location.removeprefix("sqlite:///"))) as conn:
            return [r[0] for r in conn.execute("SELECT record_id FROM audit_records ORDER BY seq")]
    with psycopg.connect(location) as conn:
        return [r[0] for r in conn.execute("SELECT record_id FROM audit_records ORDER BY seq")]


def test_leaf_numbering_follows_seq_order_across_prunes(
    store: AuditStore, opener: Opener, location: str
) -> None:
    log = AuditLog(store, signer=SIGNER)
    fill(store, 40, replay_every=3)
    log.checkpoint()
    tree = MerkleTree(leaf_hash(canonical_bytes(record(i))) for i in range(40))
    assert log.root() == tree.root()
    first = PrunedPrefix(size=12, frontier=tree.frontier(12), before=T0, pruned_at=T0)
    assert store.prune(first) == 12
    fill_more = [record(i) for i in range(40, 45)]
    store.append(fill_more)
    tree.extend(leaf_hash(canonical_bytes(r)) for r in fill_more)
    with contextlib.closing(opener()) as other:  # no cursors: every read starts cold
        assert other.size() == 45
        ids = ranks(other, location)
        assert [other.record_index(rid) for rid in ids] == list(range(12, 45))
        for start in range(12, 45, 5):
            expected = [canonical_bytes(record(i)) for i in range(start, min(start + 7, 45))]
            assert other.leaves(start, start + 7) == expected
        assert other.mismatched_rows(12, 45) == []
        fresh = AuditLog(other, signer=SIGNER)
        assert fresh.root() == tree.root()
        report = fresh.verify()
        assert report.ok, report.findings
        assert (report.size, report.root, report.pruned) == (45, tree.root(), 12)
        (proof,) = fresh.inclusion_proofs(record(30).record_id)
        verify_inclusion(
            leaf=tree.leaf(30),
            index=30,
            size=proof.tree_size,
            proof=proof.proof,
            root=tree.root(proof.tree_size),
        )
    # Every stored row pruned: the size stays K and the next record is leaf K.
    everything = PrunedPrefix(size=45, frontier=tree.frontier(45), before=T0, pruned_at=T0)
    assert store.prune(everything) == 33
    assert store.size() == 45
    assert store.leaves(45, 50) == []
    store.append([record(45)])
    assert store.record_index(record(45).record_id) == 45
    assert store.leaves(45, 50) == [canonical_bytes(record(45))]
    with contextlib.closing(opener()) as other:
        assert other.size() == 46
        assert other.leaves(45, 46) == [canonical_bytes(record(45))]


@pytest.mark.parametrize("batch", [3, 5000])
def test_verify_walks_in_batches_by_seq_whatever_the_positions(
    batch: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand edits of seq are found the same with small batches; positions are not trusted."""
    monkeypatch.setattr(hub.audit.log, "_BATCH", batch)
    db = tmp_path / "audit.sqlite3"
    store = SQLiteAuditStore(db)
    log = AuditLog(store, signer=SIGNER)
    for i in range(8):
        store.append([record(i)])
        log.checkpoint()
    assert log.verify().ok
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
        conn.execute("DELETE FROM audit_subjects WHERE seq = ?", (seqs[3],))
        conn.execute("DELETE FROM audit_records WHERE seq = ?", (seqs[3],))
    report = log.verify()
    assert report.size == 7
    assert report.first is not None
    assert report.first.index == 3
    with SQLiteAuditStore(db) as other:  # a new process: cold reads, no cursors
        fresh = AuditLog(other, signer=SIGNER)
        report = fresh.verify()
        assert (report.size, report.first and report.first.index) == (7, 3)
        with pytest.raises(AuditError):  # no proof of a log that lost a record
            fresh.inclusion_proofs(record(5).record_id)
    store.close()


def test_renumbered_positions_give_no_proof_for_another_record(tmp_path: Path) -> None:
    """A hand-swapped pair of positions changes no leaf, is reported, and yields no wrong proof."""
    db = tmp_path / "audit.sqlite3"
    with SQLiteAuditStore(db) as store:
        log = AuditLog(store, signer=SIGNER)
        for i in range(8):
            store.append([record(i)])
        log.checkpoint()
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("UPDATE audit_records SET position = -1 WHERE position = 2")
        conn.execute("UPDATE audit_records SET position = 2 WHERE position = 5")
        conn.execute("UPDATE audit_records SET position = 5 WHERE position = -1")
    with SQLiteAuditStore(db) as store:
        log = AuditLog(store, signer=SIGNER)
        # positions 2, 6, 7 from leaf 2 do not run on: read by rank
        assert store.leaves(2, 6) == [canonical_bytes(record(i)) for i in range(2, 6)]
        # the records and their order are untouched, but the edit itself is tampering with
        # the store, reported at the first position that no longer runs on
        report = log.verify()
        assert not report.ok
        assert report.first is not None
        assert report.first.index == 2
        for ref in (record(2).record_id, record(2).event_id):
            with pytest.raises(AuditIntegrityError, match="leaf 5 of the log is not record"):
                log.inclusion_proofs(ref)
        (proof,) = log.inclusion_proofs(record(3).record_id)
        assert proof.leaf_index == 3


# --- a file written by the version 2 layout ------------------------------------------------

# The layout as schema version 2 created it (hub/audit/sqlite.py before leaf positions).
V2_DDL = (
    """CREATE TABLE audit_records (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        record_id TEXT NOT NULL UNIQUE,
        time TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT,
        event_time TEXT,
        publisher TEXT,
        recipient TEXT,
        decision TEXT NOT NULL,
        rule TEXT,
        reason TEXT NOT NULL,
        lawful_basis TEXT,
        condition TEXT,
        purpose TEXT,
        protocol_hash TEXT,
        fields TEXT NOT NULL,
        payload_sha256 TEXT,
        case_pseudonym TEXT,
        subject_pseudonyms TEXT NOT NULL,
        origin TEXT,
        ack_event_id TEXT,
        canonical BLOB NOT NULL
    )""",
    """CREATE TABLE audit_subjects (
        seq INTEGER NOT NULL REFERENCES audit_records (seq),
        pseudonym TEXT NOT NULL,
        PRIMARY KEY (pseudonym, seq)
    )""",
    "CREATE INDEX audit_records_event_id ON audit_records (event_id)",
    "CREATE INDEX audit_records_recipient ON audit_records (recipient)",
    "CREATE INDEX audit_records_publisher ON audit_records (publisher)",
    "CREATE INDEX audit_records_case ON audit_records (case_pseudonym)",
    "CREATE INDEX audit_records_time ON audit_records (time)",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tree_size INTEGER NOT NULL,
        note TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE IF NOT EXISTS audit_pruned (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pruned_size INTEGER NOT NULL UNIQUE,
        frontier BLOB NOT NULL,
        proofs TEXT NOT NULL,
        before TEXT NOT NULL,
        pruned_at TEXT NOT NULL
    )""",
    "PRAGMA user_version = 2",
)
#: the version 1-3 layout: a column per field, then the record as plain JSON
V2_COLUMNS = (
    "record_id", "time", "event_id", "event_type", "event_time", "publisher", "recipient",
    "decision", "rule", "reason", "lawful_basis", "condition", "purpose", "protocol_hash",
    "fields", "payload_sha256", "case_pseudonym", "subject_pseudonyms", "origin",
    "ack_event_id", "canonical",
)  # fmt: skip
V2_INSERT = (
    f"INSERT INTO audit_records ({', '.join(V2_COLUMNS)}) "  # noqa: S608 - constant names
    f"VALUES ({', '.join('?' for _ in V2_COLUMNS)}) "
    "ON CONFLICT (record_id) DO NOTHING RETURNING seq"
)


def v2_row(r: AuditRecord) -> tuple[Any, ...]:
    """A row as hubs before schema 4 wrote it."""
    values = r.model_dump(mode="json")
    values["time"] = lite._utc_text(r.time)
    values["event_time"] = lite._utc_text(r.event_time) if r.event_time else None
    values["fields"] = json.dumps(list(r.fields))
    values["subject_pseudonyms"] = json.dumps(list(r.subject_pseudonyms))
    values["canonical"] = canonical_bytes(r)
    return tuple(values[name] for name in V2_COLUMNS)


def write_version_2_file(path: Path, n: int, pruned: int, every: int) -> MerkleTree:
    """A version 2 file as that hub wrote it: n records, replays (gaps in seq), a checkpoint
    every ``every`` records, and the first ``pruned`` records pruned. Returns the full tree.
    """
    tree = MerkleTree()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in V2_DDL:
            conn.execute(statement)
        for i in range(n):
            for r in (record(i), record(max(i - 1, 0))):  # the second is a replay
                returned = conn.execute(V2_INSERT, v2_row(r)).fetchall()
                if returned:
                    conn.executemany(
                        "INSERT INTO audit_subjects (seq, pseudonym) VALUES (?, ?)",
                        [(returned[0][0], p) for p in r.subject_pseudonyms],
                    )
            tree.extend([leaf_hash(canonical_bytes(record(i)))])
            if (i + 1) % every == 0:
                head = Checkpoint(origin=SIGNER.name, size=tree.size, root_hash=tree.root())
                conn.execute(
                    "INSERT INTO audit_checkpoints (tree_size, note) VALUES (?, ?)",
                    (tree.size, SIGNER.sign(head.body())),
                )
        prefix = PrunedPrefix(
            size=pruned,
            frontier=tree.frontier(pruned),
            before=T0 + timedelta(seconds=pruned),
            pruned_at=T0 + timedelta(days=1),
            proofs={
                s: tuple(tree.consistency_proof(s, pruned)) for s in range(every, pruned, every)
            },
        )
        doomed = "SELECT seq FROM audit_records ORDER BY seq LIMIT ?"
        conn.execute(f"DELETE FROM audit_subjects WHERE seq IN ({doomed})", (pruned,))  # noqa: S608
        conn.execute(f"DELETE FROM audit_records WHERE seq IN ({doomed})", (pruned,))  # noqa: S608
        conn.execute(
            "INSERT INTO audit_pruned (pruned_size, frontier, proofs, before, pruned_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                prefix.size,
                prefix.frontier_bytes(),
                prefix.proofs_json(),
                lite._utc_text(prefix.before),
                lite._utc_text(prefix.pruned_at),
            ),
        )
        seqs = [r[0] for r in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
    assert seqs[-1] - seqs[0] + 1 > len(seqs)  # the replays left gaps: seq is not the leaf
    return tree


def test_version_2_file_upgrades_to_the_same_log(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    tree = write_version_2_file(db, 30, pruned=8, every=4)

    with SQLiteAuditStore(db) as store:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            numbered = conn.execute("SELECT record_id, position FROM audit_records ORDER BY seq")
            positions = dict(numbered.fetchall())
            indexes = {r[1] for r in conn.execute("PRAGMA index_list(audit_subjects)")}
        assert version == lite.SCHEMA_VERSION == 4
        assert positions == {record(i).record_id: i for i in range(8, 30)}
        assert "audit_subjects_seq" in indexes
        assert store.size() == 30
        assert [store.record_index(record(i).record_id) for i in range(8, 30)] == list(range(8, 30))
        assert store.leaves(10, 13) == [canonical_bytes(record(i)) for i in range(10, 13)]

        log = AuditLog(store, signer=SIGNER)
        report = log.verify()
        assert report.ok, report.findings
        assert (report.size, report.root, report.pruned) == (30, tree.root(), 8)
        assert report.checkpoints_checked == 7  # 4 .. 28, below and above the pruned size
        assert report.checkpoints_unchecked == 0
        for proof in log.inclusion_proofs(record(13).event_id):
            assert proof.leaf_index in (12, 13)
            assert proof.proof == tuple(tree.inclusion_proof(proof.leaf_index, proof.tree_size))
            assert proof.leaf_hash == tree.leaf(proof.leaf_index)
        assert log.consistency_proof(12, 28).proof == tuple(tree.consistency_proof(12, 28))

        # The upgraded file goes on: appends are numbered after the backfilled positions.
        store.append([record(30), record(29), record(31)])
        tree.extend(leaf_hash(canonical_bytes(record(i))) for i in (30, 31))
        note = log.checkpoint()
        assert SIGNER.verifier().open_checkpoint(note).root_hash == tree.root()
        assert store.record_index(record(31).record_id) == 31

    with SQLiteAuditStore(db) as reopened:  # opened again: no second upgrade
        report = AuditLog(reopened, signer=SIGNER).verify()
        assert report.ok, report.findings
        assert (report.size, report.root) == (32, tree.root())


def test_version_2_file_with_nothing_pruned_or_stored(tmp_path: Path) -> None:
    db = tmp_path / "audit.sqlite3"
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
        for statement in V2_DDL:
            conn.execute(statement)
    with SQLiteAuditStore(db) as store:
        assert store.size() == 0
        assert store.leaves(0, 5) == []
        store.append([record(0)])
        assert store.record_index(record(0).record_id) == 0


@NO_PG
def test_pg_store_without_the_subjects_seq_index_gains_it(postgres_url: str) -> None:
    """A PostgreSQL store written before the index (same schema version) gets it on open."""
    with pg.PostgresAuditStore(postgres_url) as store:
        fill(store, 20)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP INDEX audit_subjects_seq")
    assert "audit_subjects_seq" not in pg_plan(postgres_url, pg.SUBJECTS_SQL, (1, 5))
    with pg.PostgresAuditStore(postgres_url) as store:
        assert store.mismatched_rows(0, 20) == []
        assert store.size() == 20
    assert "audit_subjects_seq" in pg_plan(postgres_url, pg.SUBJECTS_SQL, (1, 5))
    with psycopg.connect(postgres_url) as conn:
        (version,) = conn.execute("SELECT MAX(version) FROM audit_schema").fetchone() or (0,)
    assert version == pg.SCHEMA_VERSION


#: the PostgreSQL layout before schema 3: a column per field, then the record as plain JSON
PG_V2_DDL = (
    """CREATE TABLE audit_records (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        record_id TEXT NOT NULL UNIQUE, time TIMESTAMPTZ NOT NULL, event_id TEXT NOT NULL,
        event_type TEXT, event_time TIMESTAMPTZ, publisher TEXT, recipient TEXT,
        decision TEXT NOT NULL, rule TEXT, reason TEXT NOT NULL, lawful_basis TEXT,
        condition TEXT, purpose TEXT, protocol_hash TEXT, fields TEXT[] NOT NULL,
        payload_sha256 TEXT, case_pseudonym TEXT, subject_pseudonyms TEXT[] NOT NULL,
        origin TEXT, ack_event_id TEXT, canonical BYTEA NOT NULL
    )""",
    """CREATE TABLE audit_subjects (
        seq BIGINT NOT NULL REFERENCES audit_records (seq),
        pseudonym TEXT NOT NULL,
        PRIMARY KEY (pseudonym, seq)
    )""",
    "CREATE INDEX audit_records_event_id ON audit_records (event_id)",
    "CREATE INDEX audit_records_case ON audit_records (case_pseudonym)",
    "CREATE INDEX audit_subjects_seq ON audit_subjects (seq)",
    "CREATE TABLE audit_seq (last_seq BIGINT NOT NULL)",
    """CREATE TABLE audit_checkpoints (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tree_size BIGINT NOT NULL,
        note TEXT NOT NULL UNIQUE
    )""",
    """CREATE TABLE audit_pruned (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        pruned_size BIGINT NOT NULL UNIQUE, frontier BYTEA NOT NULL, proofs TEXT NOT NULL,
        before TIMESTAMPTZ NOT NULL, pruned_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE TABLE audit_schema (version INTEGER NOT NULL)",
    "INSERT INTO audit_schema (version) VALUES (2)",
)


@NO_PG
def test_pg_version_2_store_upgrades_to_the_same_log(postgres_url: str) -> None:
    """A version 2 database is rebuilt in the packed layout: same leaves, records, checks."""
    records = [record(i) for i in range(12)]
    tree = MerkleTree()
    tree.extend(leaf_hash(canonical_bytes(r)) for r in records)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in PG_V2_DDL:
            conn.execute(statement)
        for seq, r in enumerate(records, 1):
            values = r.model_dump()
            values["canonical"] = canonical_bytes(r)
            values["fields"] = list(r.fields)
            values["subject_pseudonyms"] = list(r.subject_pseudonyms)
            values["decision"] = r.decision.value
            conn.execute(
                f"INSERT INTO audit_records (seq, {', '.join(V2_COLUMNS)}) "  # noqa: S608
                f"OVERRIDING SYSTEM VALUE VALUES (%s, {', '.join('%s' for _ in V2_COLUMNS)})",
                (seq, *(values[c] for c in V2_COLUMNS)),
            )
            for pseudonym in dict.fromkeys(r.subject_pseudonyms):
                conn.execute("INSERT INTO audit_subjects VALUES (%s, %s)", (seq, pseudonym))
        conn.execute("INSERT INTO audit_seq VALUES (12)")
        head = Checkpoint(origin=SIGNER.name, size=12, root_hash=tree.root())
        conn.execute(
            "INSERT INTO audit_checkpoints (tree_size, note) VALUES (12, %s)",
            (SIGNER.sign(head.body()),),
        )
    with pg.PostgresAuditStore(postgres_url) as store:
        assert store.leaves(0, 12) == [canonical_bytes(r) for r in records]
        assert store.query(limit=100) == records
        assert store.mismatched_rows(0, 12) == []
        report = AuditLog(store, signer=SIGNER).verify()
        assert report.ok, report.findings
        assert report.root == tree.root()
        store.append([record(12), record(3)])
        assert store.record_index(record(12).record_id) == 12
    with psycopg.connect(postgres_url) as conn:
        (version,) = conn.execute("SELECT MAX(version) FROM audit_schema").fetchone() or (0,)
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'audit_records'"
            )
        }
    assert version == pg.SCHEMA_VERSION == 3
    assert "reason" not in columns
