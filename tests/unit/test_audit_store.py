"""SQLite audit store on real files: append, dedup, filters, counts, concurrent access."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.audit.packing import INDEX_COLUMNS, SharedValues, unpack
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.sqlite import SQLiteAuditStore, canonical_bytes
from hub.audit.store import AuditStore, open_store, sqlite_path
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
PSEUDO = Pseudonymiser(bytes(range(32)))


def record(
    event_id: str = "evt-1",
    recipient: str | None = "council.housing",
    decision: AuditDecision = AuditDecision.DELIVERED,
    **kwargs: Any,
) -> AuditRecord:
    values: dict[str, Any] = {
        "record_id": record_id_for(event_id, recipient, decision),
        "time": T0,
        "event_id": event_id,
        "event_type": "uk.csp.marac.flag.raised.v1",
        "event_time": T0 - timedelta(minutes=5),
        "publisher": "police",
        "recipient": recipient,
        "decision": decision,
        "rule": "marac-to-housing",
        "reason": "rule matched",
        "lawful_basis": "UK GDPR 6(1)(e)",
        "protocol_hash": "sha256:abc",
        "fields": ("case_ref", "address"),
        "payload_sha256": "0" * 64,
        "case_pseudonym": PSEUDO.case("MARAC-1"),
        "subject_pseudonyms": (PSEUDO.subject("SUBJ-1"),),
        "origin": "hub.in.police/0/7",
    }
    values.update(kwargs)
    return AuditRecord(**values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteAuditStore]:
    with SQLiteAuditStore(tmp_path / "nested" / "audit.sqlite3") as s:
        yield s


def ids(records: list[AuditRecord]) -> list[str]:
    return [f"{r.event_id}:{r.recipient}:{r.decision}" for r in records]


def test_creates_parent_dir_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "audit.sqlite3"
    with SQLiteAuditStore(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_a_connection_holds_a_batch_and_checkpoints_in_bulk_yet_syncs_each_commit(
    tmp_path: Path,
) -> None:
    """Issue 16: a 500-record append dirties about 1,400 pages at a million records, more
    than SQLite's default 2 MiB cache (it spilled mid-transaction) and than its default
    1,000-page auto-checkpoint (it checkpointed on every commit). Every connection, new
    file or reopened, sizes both for that; a commit is still synced (FULL) before it returns.
    """
    path = tmp_path / "audit.sqlite3"
    for _ in range(2):
        with SQLiteAuditStore(path) as opened:
            settings = {
                name: opened._conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in (
                    "synchronous",
                    "cache_size",
                    "wal_autocheckpoint",
                    "journal_size_limit",
                )
            }
            opened.append([record()])
        assert settings == {
            "synchronous": 2,  # FULL
            "cache_size": -32 * 1024,  # KiB: room for a sink batch's dirty pages
            "wal_autocheckpoint": 10_000,
            "journal_size_limit": 64 * 1024 * 1024,
        }


def test_a_lookup_connection_keeps_a_small_page_cache(tmp_path: Path) -> None:
    """The router's lookups read a few pages each: 1 MiB of cache, not the writer's
    32 MiB, which each of a worker's three lookup connections filled as the log grew."""
    settings = HubSettings(data_dir=tmp_path)
    writer, lookups = open_store(settings), open_store(settings, lookups=True)
    try:
        assert isinstance(writer, SQLiteAuditStore)
        assert isinstance(lookups, SQLiteAuditStore)
        writer.append([record()])
        assert lookups.stored_ids([record().record_id]) == {record().record_id}
        cache = [s._conn.execute("PRAGMA cache_size").fetchone()[0] for s in (writer, lookups)]
    finally:
        writer.close()
        lookups.close()
    assert cache == [-32 * 1024, -1024]


def test_satisfies_protocol(store: SQLiteAuditStore) -> None:
    typed: AuditStore = store
    assert typed.counts()["delivered"] == 0


def test_the_record_is_kept_once(store: SQLiteAuditStore) -> None:
    """Schema 4: the columns queries filter on, and the record packed against them."""
    store.append([record()])
    conn = sqlite3.connect(store.path)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_records)")}
        row = conn.execute(
            f"SELECT {', '.join(INDEX_COLUMNS)}, canonical, position FROM audit_records"  # noqa: S608
        ).fetchone()
        shared = SharedValues()
        shared.learn(conn.execute("SELECT id, value FROM audit_values"))
    finally:
        conn.close()
    # position: the leaf index (schema 3), so leaf reads are index ranges
    assert set(INDEX_COLUMNS) | {"seq", "position", "canonical"} == columns
    *kept, canonical, position = row
    assert position == 0
    assert len(canonical) < len(canonical_bytes(record())) // 2
    assert unpack(canonical, kept) is None  # it refers to values kept once, in audit_values
    assert unpack(canonical, kept, shared) == canonical_bytes(record())
    assert store.leaves(0, 1) == [canonical_bytes(record())]


def test_leaves_read_back_are_what_the_store_holds_not_what_it_wrote(tmp_path: Path) -> None:
    """The writer remembers its rows' canonical bytes (``WrittenRows``, the sink's checkpoint
    read-back) but uses them only for a row read back unchanged: a column or a blob changed
    since gives the leaf a store that never wrote the rows reads."""
    path = tmp_path / "audit.sqlite3"
    records = [record(f"evt-{i}") for i in range(4)]
    with SQLiteAuditStore(path) as writer:
        writer.append(records[:2])
        writer.append(records[2:])
        with sqlite3.connect(path) as db:
            db.execute("UPDATE audit_records SET recipient = 'fire' WHERE seq = 2")
            (blob,) = db.execute("SELECT canonical FROM audit_records WHERE seq = 3").fetchone()
            altered = blob.replace(b"rule matched", b"rule altered")
            db.execute("UPDATE audit_records SET canonical = ? WHERE seq = 3", (altered,))
            db.execute("UPDATE audit_records SET canonical = ? WHERE seq = 4", (b"{}",))
        read = writer.leaves(0, 4)
        with SQLiteAuditStore(path) as reader:
            assert read == reader.leaves(0, 4)
    assert read[0] == canonical_bytes(records[0])
    assert read[1] != canonical_bytes(records[1])
    assert b'"rule altered"' in read[2]
    assert read[3] == b"{}"


def test_round_trip_is_exact(store: SQLiteAuditStore) -> None:
    naive = record("evt-2", time=datetime(2024, 5, 1, 10, 0), event_time=None)
    assert store.append([record(), naive]) == 2
    assert store.query() == [record(), naive]


def test_append_dedups_by_record_id(store: SQLiteAuditStore) -> None:
    assert store.append([record(), record("evt-2")]) == 2
    assert store.append([record(), record("evt-3")]) == 1
    assert store.append([record("evt-4"), record("evt-4")]) == 1
    assert store.append([]) == 0
    assert [r.event_id for r in store.query()] == ["evt-1", "evt-2", "evt-3", "evt-4"]
    # A replay with a different body does not overwrite the first write.
    assert store.append([record(reason="replayed")]) == 0
    assert store.query(event_id="evt-1")[0].reason == "rule matched"


def test_a_replay_inside_a_batch_leaves_no_gap_and_no_trace(store: SQLiteAuditStore) -> None:
    """The first try writes the new rows around the stored one; they are taken back (rows,
    AUTOINCREMENT's counter) and written again densely, with their subjects and values."""
    store.append([record("evt-1"), record("evt-2")])
    novel = record("evt-4", rule="a-rule-not-seen-before", subject_pseudonyms=("ps_x",))
    assert store.append([record("evt-3"), record("evt-1"), novel, record("evt-2")]) == 2
    assert store.append([record("evt-5")]) == 1
    conn = store._conn
    rows = conn.execute("SELECT seq, position, event_id FROM audit_records ORDER BY seq")
    assert rows.fetchall() == [
        (1, 0, "evt-1"),
        (2, 1, "evt-2"),
        (3, 2, "evt-3"),
        (4, 3, "evt-4"),
        (5, 4, "evt-5"),
    ]
    counter = "SELECT seq FROM sqlite_sequence WHERE name = 'audit_records'"
    assert conn.execute(counter).fetchone() == (5,)
    assert store.query(subject_pseudonym="ps_x") == [novel]
    assert store.mismatched_rows(0, 5) == []


def test_query_in_append_order_with_limit(store: SQLiteAuditStore) -> None:
    store.append([record(f"evt-{i}", time=T0 - timedelta(minutes=i)) for i in range(5)])
    assert [r.event_id for r in store.query(limit=3)] == ["evt-0", "evt-1", "evt-2"]
    with pytest.raises(AuditError, match="limit"):
        store.query(limit=0)


def test_query_filters(store: SQLiteAuditStore) -> None:
    store.append(
        [
            record("evt-1", "council.housing"),
            record("evt-1", "fire", AuditDecision.WITHHELD, fields=()),
            record("evt-2", "council.housing", publisher="probation"),
            record("evt-3", None, AuditDecision.REJECTED, case_pseudonym=PSEUDO.case("C-9")),
            record(
                "evt-4",
                "police",
                AuditDecision.ACKNOWLEDGED,
                publisher="council.housing",
                time=T0 + timedelta(hours=1),
            ),
        ]
    )
    assert ids(store.query(event_id="evt-1")) == [
        "evt-1:council.housing:delivered",
        "evt-1:fire:withheld",
    ]
    # party matches recipient or publisher
    assert [r.event_id for r in store.query(party="council.housing")] == [
        "evt-1",
        "evt-2",
        "evt-4",
    ]
    assert [r.event_id for r in store.query(party="probation")] == ["evt-2"]
    assert [r.event_id for r in store.query(decision="rejected")] == ["evt-3"]
    assert [r.event_id for r in store.query(decision=AuditDecision.WITHHELD)] == ["evt-1"]
    assert [r.event_id for r in store.query(case_pseudonym=PSEUDO.case("C-9"))] == ["evt-3"]
    assert [r.event_id for r in store.query(since=T0 + timedelta(minutes=30))] == ["evt-4"]
    assert ids(store.query(event_id="evt-1", party="fire")) == ["evt-1:fire:withheld"]
    assert store.query(event_id="evt-1", decision="rejected") == []
    assert store.query(party="nobody") == []


def test_since_compares_instants_across_offsets(store: SQLiteAuditStore) -> None:
    bst = datetime(2024, 5, 1, 11, 0, tzinfo=UTC).astimezone()  # any local offset
    store.append([record(time=bst)])
    assert len(store.query(since=datetime(2024, 5, 1, 10, 59, tzinfo=UTC))) == 1
    assert store.query(since=datetime(2024, 5, 1, 11, 1, tzinfo=UTC)) == []


def test_subject_lookup_through_pseudonyms(store: SQLiteAuditStore) -> None:
    alice, bob = PSEUDO.subject("S-ALICE"), PSEUDO.subject("S-BOB")
    store.append(
        [
            record("evt-1", subject_pseudonyms=(alice,)),
            record("evt-2", subject_pseudonyms=(alice, bob, alice)),
            record("evt-3", subject_pseudonyms=()),
        ]
    )
    assert [r.event_id for r in store.query(subject_pseudonym=PSEUDO.subject(" s-alice"))] == [
        "evt-1",
        "evt-2",
    ]
    assert [r.event_id for r in store.query(subject_pseudonym=bob)] == ["evt-2"]
    # a case pseudonym of the same reference is not a subject pseudonym
    assert store.query(subject_pseudonym=PSEUDO.case("S-ALICE")) == []


def test_counts_and_has_event(store: SQLiteAuditStore) -> None:
    assert store.counts() == {d.value: 0 for d in AuditDecision}
    assert not store.has_event("evt-1")
    store.append(
        [
            record("evt-1"),
            record("evt-1", "fire"),
            record("evt-1", "probation", AuditDecision.WITHHELD),
            record("evt-2", None, AuditDecision.REJECTED),
        ]
    )
    expected = {d.value: 0 for d in AuditDecision}
    expected.update(delivered=2, withheld=1, rejected=1)
    assert store.counts() == expected
    assert store.has_event("evt-1")
    assert store.has_event("evt-2")
    assert not store.has_event("evt-9")


def test_reopen_keeps_records(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    with SQLiteAuditStore(path) as first:
        first.append([record()])
    with SQLiteAuditStore(path) as second:
        assert second.query() == [record()]


def test_reader_not_blocked_by_writer_transaction(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    with SQLiteAuditStore(path) as writer, SQLiteAuditStore(path) as reader:
        writer.append([record("evt-1")])
        # Another process holds the write lock mid-transaction: readers still see the
        # last committed state at once (WAL), and never the uncommitted row.
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("DELETE FROM audit_subjects")
            assert [r.event_id for r in reader.query()] == ["evt-1"]
            assert len(reader.query(subject_pseudonym=PSEUDO.subject("SUBJ-1"))) == 1
            other.execute("ROLLBACK")
        finally:
            other.close()
        writer.append([record("evt-2")])
        assert [r.event_id for r in reader.query()] == ["evt-1", "evt-2"]


def test_concurrent_writers_and_reader(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    SQLiteAuditStore(path).close()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(prefix: str) -> None:
        try:
            with SQLiteAuditStore(path) as w:
                for i in range(20):
                    w.append([record(f"{prefix}-{i}"), record(f"{prefix}-{i}", "fire")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            with SQLiteAuditStore(path) as r:
                for _ in range(30):
                    seen.append(len(r.query(limit=1000)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "b")]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert seen == sorted(seen)  # the reader only ever sees the log grow
    with SQLiteAuditStore(path) as final:
        assert final.counts()["delivered"] == 80


def test_closed_store_raises_audit_error(tmp_path: Path) -> None:
    s = SQLiteAuditStore(tmp_path / "audit.sqlite3")
    s.close()
    s.close()  # idempotent
    with pytest.raises(AuditError, match="cannot query"):
        s.query()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AuditError, match=r"audit store .*audit\.sqlite3: cannot open"):
        SQLiteAuditStore(path)


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    SQLiteAuditStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(AuditError, match="expected schema version 4, got 99"):
        SQLiteAuditStore(path)


# --- open_store ---------------------------------------------------------------------------


def test_open_store_default_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path)
    store = open_store(settings)
    try:
        store.append([record()])
        assert isinstance(store, SQLiteAuditStore)
        assert store.path == tmp_path / "audit.sqlite3"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "data/audit.sqlite3"),
        ("sqlite:///", "data/audit.sqlite3"),
        ("sqlite:///elsewhere/a.db", "elsewhere/a.db"),
    ],
)
def test_sqlite_path(url: str | None, expected: str) -> None:
    settings = HubSettings(data_dir=Path("data"), audit_url=url)
    assert sqlite_path(settings) == Path(expected)


def test_sqlite_absolute_path(tmp_path: Path) -> None:
    settings = HubSettings(audit_url=f"sqlite:///{tmp_path}/x.db")
    assert sqlite_path(settings) == tmp_path / "x.db"


def test_unreachable_postgres_is_a_clean_error(tmp_path: Path) -> None:
    settings = HubSettings(
        data_dir=tmp_path, audit_url="postgresql://hub:s3cret@127.0.0.1:1/hub?connect_timeout=2"
    )
    with pytest.raises(AuditError, match="cannot open") as info:
        open_store(settings)
    assert "s3cret" not in str(info.value)


def test_unknown_scheme(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path, audit_url="mysql://hub:s3cret@db/hub")
    with pytest.raises(AuditError, match="expected sqlite") as info:
        open_store(settings)
    assert "s3cret" not in str(info.value)


def test_a_batch_that_fails_midway_leaves_nothing_behind(store: SQLiteAuditStore) -> None:
    """The batch is one transaction: a failure in its last table undoes its rows, its new
    shared values and their numbers, and the next batch is numbered as if it never ran."""
    batch = [record(f"evt-{i}", subject_pseudonyms=(f"ps_{i}",)) for i in range(5)]
    conn = sqlite3.connect(store.path)
    try:
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON audit_subjects WHEN NEW.pseudonym = 'ps_3' "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
        conn.commit()
        with pytest.raises(AuditError, match="boom"):
            store.append(batch)
        assert store.size() == 0
        assert store.stored_ids([r.record_id for r in batch]) == set()
        assert conn.execute("SELECT COUNT(*) FROM audit_values").fetchone() == (0,)
        conn.execute("DROP TRIGGER boom")
        conn.commit()
    finally:
        conn.close()
    assert store.append(batch[3:]) == 2
    assert store.append(batch) == 3
    assert [store.record_index(r.record_id) for r in batch] == [2, 3, 4, 0, 1]
    assert store.query(limit=10) == [*batch[3:], *batch[:3]]
    assert store.mismatched_rows(0, 5) == []
