"""The ``AuditStore`` contract, run against every backend: SQLite and PostgreSQL.

Why one suite: the Merkle log, the reports and the router only see the protocol, so the
two stores must be interchangeable: same dedup, filters, order and leaf numbering. The
PostgreSQL cases run on a throwaway server (``tests/postgres.py``) and skip only when the
PostgreSQL binaries are absent. Backend-specific details (WAL, PRAGMAs, the advisory lock)
are tested at the end of this file and in ``test_audit_store.py``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hub.audit.packing import INDEX_COLUMNS, SharedValues, unpack
from hub.audit.postgres import PostgresAuditStore, redacted_url
from hub.audit.sqlite import SQLiteAuditStore, canonical_bytes
from hub.audit.store import AuditStore, open_store
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord
from hub.settings import HubSettings
from tests.unit.conftest import NO_PG, Opener
from tests.unit.test_audit_store import PSEUDO, T0, ids, record


def events(records: list[AuditRecord]) -> list[str]:
    return [r.event_id for r in records]


# --- the contract -------------------------------------------------------------------------


def test_open_store_picks_the_backend(store: AuditStore, location: str) -> None:
    expected = SQLiteAuditStore if location.startswith("sqlite") else PostgresAuditStore
    assert isinstance(store, expected)
    assert store.counts() == {d.value: 0 for d in AuditDecision}
    assert store.size() == 0


def test_round_trip_is_exact(store: AuditStore) -> None:
    naive = record("evt-2", time=datetime(2024, 5, 1, 10, 0), event_time=None)
    offset = record("evt-3", time=datetime(2024, 5, 1, 11, 0, tzinfo=UTC).astimezone())
    empty = record("evt-4", fields=(), subject_pseudonyms=(), recipient=None)
    assert store.append([record(), naive, offset, empty]) == 4
    assert store.query() == [record(), naive, offset, empty]
    assert store.leaves(0, 4) == [canonical_bytes(r) for r in (record(), naive, offset, empty)]


def test_append_dedups_by_record_id(store: AuditStore) -> None:
    assert store.append([record(), record("evt-2")]) == 2
    assert store.append([record(), record("evt-3")]) == 1
    assert store.append([record("evt-4"), record("evt-4")]) == 1
    assert store.append([]) == 0
    assert events(store.query()) == ["evt-1", "evt-2", "evt-3", "evt-4"]
    assert store.append([record(reason="replayed")]) == 0
    assert store.query(event_id="evt-1")[0].reason == "rule matched"
    # Skipped duplicates use up no leaf index: indices stay 0..n-1.
    assert store.size() == 4
    assert [store.record_index(r.record_id) for r in store.query()] == [0, 1, 2, 3]


def test_a_record_that_cannot_be_built_midway_stores_none_of_its_batch(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL builds each row as it copies it (issue 16: the server inserts the first
    rows while the next are built), so a failure there lands inside the open COPY; either
    store then keeps nothing of the batch, no seq, and no shared value it numbered."""
    import hub.audit.postgres
    import hub.audit.sqlite

    real = hub.audit.sqlite._prepare

    def prepare(r: AuditRecord) -> object:
        if r.event_id == "evt-boom":
            raise RuntimeError("cannot build this row")
        return real(r)

    monkeypatch.setattr(hub.audit.sqlite, "_prepare", prepare)
    monkeypatch.setattr(hub.audit.postgres, "_prepare", prepare)
    assert store.append([record("evt-0")]) == 1
    novel = record("evt-2", rule="a-rule-not-seen-before", subject_pseudonyms=("ps_x",))
    batch = [record("evt-1"), novel, record("evt-boom"), record("evt-3")]
    with pytest.raises(RuntimeError, match="cannot build"):
        store.append(batch)
    assert store.size() == 1
    assert store.stored_ids([r.record_id for r in batch]) == set()
    assert store.query(subject_pseudonym="ps_x") == []
    monkeypatch.setattr(hub.audit.sqlite, "_prepare", real)
    monkeypatch.setattr(hub.audit.postgres, "_prepare", real)
    assert store.append(batch) == 4
    assert [store.record_index(r.record_id) for r in batch] == [1, 2, 3, 4]
    assert store.query(subject_pseudonym="ps_x") == [novel]
    assert store.mismatched_rows(0, 5) == []


def test_query_in_append_order_with_limit(store: AuditStore) -> None:
    store.append([record(f"evt-{i}", time=T0 - timedelta(minutes=i)) for i in range(5)])
    assert events(store.query(limit=3)) == ["evt-0", "evt-1", "evt-2"]
    with pytest.raises(AuditError, match="limit"):
        store.query(limit=0)


def test_query_filters(store: AuditStore) -> None:
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
    assert events(store.query(party="council.housing")) == ["evt-1", "evt-2", "evt-4"]
    assert events(store.query(party="probation")) == ["evt-2"]
    assert events(store.query(decision="rejected")) == ["evt-3"]
    assert events(store.query(decision=AuditDecision.WITHHELD)) == ["evt-1"]
    assert events(store.query(case_pseudonym=PSEUDO.case("C-9"))) == ["evt-3"]
    assert events(store.query(since=T0 + timedelta(minutes=30))) == ["evt-4"]
    assert events(store.query(since=datetime(2024, 5, 1, 9, 30))) == ["evt-4"]  # naive = UTC
    assert ids(store.query(event_id="evt-1", party="fire")) == ["evt-1:fire:withheld"]
    assert store.query(event_id="evt-1", decision="rejected") == []
    assert store.query(party="nobody") == []


def test_since_compares_instants_across_offsets(store: AuditStore) -> None:
    store.append([record(time=datetime(2024, 5, 1, 11, 0, tzinfo=UTC).astimezone())])
    assert len(store.query(since=datetime(2024, 5, 1, 10, 59, tzinfo=UTC))) == 1
    assert store.query(since=datetime(2024, 5, 1, 11, 1, tzinfo=UTC)) == []


def test_subject_lookup_through_pseudonyms(store: AuditStore) -> None:
    alice, bob = PSEUDO.subject("S-ALICE"), PSEUDO.subject("S-BOB")
    store.append(
        [
            record("evt-1", subject_pseudonyms=(alice,)),
            record("evt-2", subject_pseudonyms=(alice, bob, alice)),
            record("evt-3", subject_pseudonyms=()),
        ]
    )
    assert events(store.query(subject_pseudonym=PSEUDO.subject(" s-alice"))) == ["evt-1", "evt-2"]
    assert events(store.query(subject_pseudonym=bob)) == ["evt-2"]
    assert store.query(subject_pseudonym=PSEUDO.case("S-ALICE")) == []


def test_counts_and_has_event(store: AuditStore) -> None:
    assert not store.has_event("evt-1")
    store.append(
        [
            record("evt-1"),
            record("evt-1", "fire"),
            record("evt-1", "probation", AuditDecision.WITHHELD),
            record("evt-2", None, AuditDecision.REJECTED),
        ]
    )
    expected = {d.value: 0 for d in AuditDecision} | {"delivered": 2, "withheld": 1, "rejected": 1}
    assert store.counts() == expected
    assert store.has_event("evt-1")
    assert store.has_event("evt-2")
    assert not store.has_event("evt-9")


def test_case_recipients_are_the_parties_delivered_any_event_of_the_case(
    store: AuditStore,
) -> None:
    case, other = PSEUDO.case("MARAC-1"), PSEUDO.case("MARAC-2")
    assert store.case_recipients(case) == set()
    store.append(
        [
            record("evt-1"),
            record("evt-1", "fire"),
            record("evt-2", "council.housing"),  # a party delivered two events: named once
            record("evt-2", "probation", AuditDecision.WITHHELD),  # withheld: never received
            record("evt-3", "health", case_pseudonym=other),  # another case
            record("evt-4", None, AuditDecision.REJECTED),
        ]
    )
    assert store.case_recipients(case) == {"council.housing", "fire"}
    assert store.case_recipients(other) == {"health"}
    assert store.case_recipients(PSEUDO.case("MARAC-9")) == set()


def test_stored_ids_names_what_the_store_holds(store: AuditStore) -> None:
    held = [record(f"evt-{i}") for i in range(3)]
    assert store.stored_ids([r.record_id for r in held]) == set()
    assert store.stored_ids([]) == set()
    store.append(held)
    ids_ = [r.record_id for r in held]
    assert store.stored_ids([*ids_, "no-such-record", ids_[0]]) == set(ids_)
    assert store.stored_ids(["no-such-record"]) == set()


def test_stored_ids_chunks_long_lists(store: AuditStore) -> None:
    """More ids than one statement takes (SQLite's 999 parameters) still get one answer."""
    batch = [record(f"evt-{i}") for i in range(2_500)]
    store.append(batch[::2])
    asked = [r.record_id for r in batch] + [f"missing-{i}" for i in range(20_000)]
    assert store.stored_ids(asked) == {r.record_id for r in batch[::2]}


def test_leaves_and_record_index(store: AuditStore) -> None:
    batch = [record(f"evt-{i}") for i in range(6)]
    store.append(batch)
    assert store.size() == 6
    assert store.leaves(2, 4) == [canonical_bytes(r) for r in batch[2:4]]
    assert store.leaves(4, 99) == [canonical_bytes(r) for r in batch[4:]]
    assert store.leaves(3, 3) == []
    assert store.record_index(batch[5].record_id) == 5
    assert store.record_index("no-such-record") is None
    with pytest.raises(AuditError, match="start <= end"):
        store.leaves(3, 2)
    assert store.mismatched_rows(0, 6) == []
    with pytest.raises(AuditError, match="start <= end"):
        store.mismatched_rows(-1, 2)


def test_checkpoints_in_order_saved_once(store: AuditStore) -> None:
    assert store.checkpoints() == []
    store.save_checkpoint(2, "note two\n")
    store.save_checkpoint(1, "note one\n")
    store.save_checkpoint(2, "note two\n")
    assert store.checkpoints() == [(2, "note two\n"), (1, "note one\n")]


def test_reopen_keeps_records(opener: Opener) -> None:
    with_first = opener()
    with_first.append([record()])
    with_first.close()
    second = opener()
    try:
        assert second.query() == [record()]
        assert second.checkpoints() == []
    finally:
        second.close()


def test_closed_store_raises_audit_error(opener: Opener) -> None:
    s = opener()
    s.close()
    s.close()  # idempotent
    with pytest.raises(AuditError, match="cannot query"):
        s.query()


def test_concurrent_writers_commit_in_append_order(opener: Opener) -> None:
    """Readers only ever see a prefix of the final log: never leaf N+1 without leaf N."""
    opener().close()
    errors: list[BaseException] = []
    snapshots: list[list[str]] = []
    done = threading.Event()

    def write(prefix: str) -> None:
        try:
            w = opener()
            try:
                for i in range(20):
                    w.append([record(f"{prefix}-{i}"), record(f"{prefix}-{i}", "fire")])
                    w.append([record(f"{prefix}-{i}")])  # a replay: no leaf, no gap
            finally:
                w.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            r = opener()
            try:
                while not done.is_set():
                    snapshots.append([x.record_id for x in r.query(limit=1000)])
            finally:
                r.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(p,)) for p in ("a", "b", "c")]
    reader = threading.Thread(target=read)
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    done.set()
    reader.join(timeout=30)
    assert errors == []
    final_store = opener()
    try:
        final = [x.record_id for x in final_store.query(limit=1000)]
        assert len(final) == 120
        assert final_store.size() == 120
        assert [final_store.record_index(rid) for rid in final] == list(range(120))
    finally:
        final_store.close()
    assert len(snapshots) > 1
    for seen in snapshots:
        assert seen == final[: len(seen)]


def _append_in_process(location: str, data_dir: str, prefix: str) -> None:
    store = open_store(HubSettings(data_dir=Path(data_dir), audit_url=location))
    try:
        for i in range(10):
            store.append([record(f"{prefix}-{i}"), record(f"{prefix}-{i}", "fire")])
    finally:
        store.close()


def test_several_writer_processes(location: str, tmp_path: Path) -> None:
    """Separate OS processes (as several router workers are) share one store safely."""
    open_store(HubSettings(data_dir=tmp_path, audit_url=location)).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_append_in_process, args=(location, str(tmp_path), p))
        for p in ("p1", "p2", "p3")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    store = open_store(HubSettings(data_dir=tmp_path, audit_url=location))
    try:
        assert store.size() == 60
        assert store.counts()["delivered"] == 60
        assert store.mismatched_rows(0, 60) == []
    finally:
        store.close()


# --- PostgreSQL specifics -----------------------------------------------------------------


@NO_PG
def test_pg_layout_and_dense_seq(postgres_url: str) -> None:
    with PostgresAuditStore(postgres_url) as store:
        store.append([record("evt-1"), record("evt-2")])
        store.append([record("evt-1"), record("evt-3")])  # the replay burns no seq
        with pytest.raises(AuditError, match="cannot append"):
            # A failing batch rolls back whole, leaving no gap behind (PostgreSQL text
            # holds no NUL; the recipient is a column, the reason only in ``canonical``).
            store.append([record("evt-4"), record("evt-5", "fire\x00")])
        store.append([record("evt-4")])
    with psycopg.connect(postgres_url) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'audit_records'"
            )
        }
        seqs = [row[0] for row in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
        first = conn.execute(
            f"SELECT {', '.join(INDEX_COLUMNS)}, canonical FROM audit_records WHERE seq = 1"  # noqa: S608
        ).fetchone()
        values = conn.execute("SELECT id, value FROM audit_values").fetchall()
        identity = conn.execute(
            "SELECT is_identity FROM information_schema.columns "
            "WHERE table_name = 'audit_records' AND column_name = 'seq'"
        ).fetchone()
    # Schema 3: the columns queries filter on, and the record packed against them.
    assert set(INDEX_COLUMNS) | {"seq", "canonical"} == columns
    assert seqs == [1, 2, 3, 4]
    assert first is not None
    *kept, canonical = first
    kept[INDEX_COLUMNS.index("time")] = kept[INDEX_COLUMNS.index("time")].isoformat(
        timespec="microseconds"
    )
    shared = SharedValues()
    shared.learn(values)
    assert unpack(bytes(canonical), kept, shared) == canonical_bytes(record("evt-1"))
    assert identity == ("YES",)


@NO_PG
def test_pg_replay_retried_after_another_writer_numbers_afresh(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replayed id rolls the whole transaction back; the retry reads what came in between.

    The first attempt numbered a new shared value; another writer commits a row and a value
    of its own before the retry takes the lock, so the retry must number its value after
    that one and its row after that row (the counter the rollback took back).
    """
    with PostgresAuditStore(postgres_url) as writer, PostgresAuditStore(postgres_url) as other:
        writer.append([record("evt-1")])
        again = writer._append_again
        between: list[int] = []

        def append_again(conn: Any, batch: dict[str, AuditRecord]) -> int:
            between.append(other.append([record("evt-2", rule="rule-of-the-other")]))
            return again(conn, batch)

        monkeypatch.setattr(writer, "_append_again", append_again)
        assert writer.append([record("evt-1"), record("evt-3", rule="rule-of-the-writer")]) == 1
        assert between == [1]
        monkeypatch.undo()
        assert writer.append([record("evt-4")]) == 1  # the fast path numbers on from there
        written = writer.leaves(0, 4)
    with PostgresAuditStore(postgres_url) as fresh:
        assert events(fresh.query()) == ["evt-1", "evt-2", "evt-3", "evt-4"]
        assert [r.rule for r in fresh.query()][1:3] == ["rule-of-the-other", "rule-of-the-writer"]
        assert fresh.leaves(0, 4) == written
        assert fresh.mismatched_rows(0, 4) == []
    with psycopg.connect(postgres_url) as conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
        counter = conn.execute("SELECT last_seq FROM audit_seq").fetchone()
        subjects = conn.execute("SELECT count(*) FROM audit_subjects").fetchone()
    assert seqs == [1, 2, 3, 4]
    assert counter == (4,)
    assert subjects == (4,)


@NO_PG
def test_pg_a_batch_wholly_replayed_stores_nothing_and_keeps_the_counter(
    postgres_url: str,
) -> None:
    with PostgresAuditStore(postgres_url) as store:
        store.append([record("evt-1"), record("evt-2")])
        assert store.append([record("evt-2"), record("evt-1")]) == 0
        assert store.append([record("evt-3")]) == 1
        assert store.size() == 3
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT last_seq FROM audit_seq").fetchone() == (3,)


@NO_PG
def test_pg_a_failed_append_leaves_the_connection_usable_and_nothing_written(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the counter moved (here, the subject rows) rolls it all back."""
    with PostgresAuditStore(postgres_url) as store:
        store.append([record("evt-1")])

        def fail(*args: Any) -> None:
            raise RuntimeError("subject rows refused")

        monkeypatch.setattr(store, "_finish", fail)
        with pytest.raises(RuntimeError, match="subject rows refused"):
            store.append([record("evt-2", rule="a-rule-never-kept")])
        monkeypatch.undo()
        conn = store._conn
        assert conn is not None
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert store.append([record("evt-3", rule="a-rule-kept")]) == 1
        assert events(store.query()) == ["evt-1", "evt-3"]
    with psycopg.connect(postgres_url) as conn:
        seqs = [row[0] for row in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
        counter = conn.execute("SELECT last_seq FROM audit_seq").fetchone()
        kept = [bytes(row[0]) for row in conn.execute("SELECT value FROM audit_values")]
    assert seqs == [1, 2]
    assert counter == (2,)
    assert b'"a-rule-kept"' in kept
    assert b'"a-rule-never-kept"' not in kept


@NO_PG
def test_pg_copies_bytea_through_the_plain_bytes_dumper(postgres_url: str) -> None:
    """The dumper ``COPY`` finds by bytea's oid is bytes', not dbapi20's ``Binary`` one."""
    with PostgresAuditStore(postgres_url) as store:
        conn = store._connection()
        dumper = conn.adapters.get_dumper_by_oid(
            psycopg.adapters.types["bytea"].oid, psycopg.pq.Format.BINARY
        )
        assert not issubclass(dumper, psycopg.dbapi20.BinaryBinaryDumper)
        assert dumper is conn.adapters.get_dumper(bytes, psycopg.adapt.PyFormat.BINARY)
        store.append([record("evt-1")])
        assert store.leaves(0, 1) == [canonical_bytes(record("evt-1"))]


@NO_PG
def test_pg_writer_waits_for_the_lock_holder(postgres_url: str) -> None:
    """A second writer waits while another holds the append lock, and readers do not."""
    with PostgresAuditStore(postgres_url) as writer, PostgresAuditStore(postgres_url) as reader:
        writer.append([record("evt-1")])
        finished = threading.Event()
        other = psycopg.connect(postgres_url)
        try:
            other.execute("SELECT pg_advisory_xact_lock(%s)", (0x0293_0A7E_87B9_5C3B,))
            other.execute("DELETE FROM audit_subjects")  # uncommitted

            def append() -> None:
                writer.append([record("evt-2")])
                finished.set()

            thread = threading.Thread(target=append)
            thread.start()
            time.sleep(0.5)
            assert not finished.is_set()
            assert events(reader.query()) == ["evt-1"]
            assert len(reader.query(subject_pseudonym=PSEUDO.subject("SUBJ-1"))) == 1
            other.rollback()
            thread.join(timeout=10)
            assert finished.is_set()
        finally:
            other.close()
        assert events(reader.query()) == ["evt-1", "evt-2"]


@NO_PG
def test_pg_mismatched_rows_finds_hand_edits(postgres_url: str) -> None:
    with PostgresAuditStore(postgres_url) as store:
        store.append([record(f"evt-{i}") for i in range(4)])
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("UPDATE audit_records SET recipient = 'fire' WHERE seq = 2")
            conn.execute("DELETE FROM audit_subjects WHERE seq = 4")
        assert store.mismatched_rows(0, 4) == [1, 3]
        assert store.mismatched_rows(2, 4) == [3]


@NO_PG
def test_pg_leaves_read_back_are_what_the_store_holds_not_what_it_wrote(
    postgres_url: str,
) -> None:
    """As in SQLite (``test_audit_store.py``): the writer's remembered canonical bytes serve
    only rows read back unchanged, ``time`` read as the server's text included (borrowed
    from its column: a time with microseconds)."""
    at = T0 + timedelta(microseconds=123_456)
    records = [record(f"evt-{i}", time=at) for i in range(4)]
    with PostgresAuditStore(postgres_url) as writer:
        writer.append(records[:2])
        writer.append(records[2:])
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("UPDATE audit_records SET recipient = 'fire' WHERE seq = 2")
            conn.execute("UPDATE audit_records SET time = time + interval '1 second' WHERE seq = 3")
            conn.execute("UPDATE audit_records SET canonical = %s WHERE seq = 4", (b"{}",))
        read = writer.leaves(0, 4)
        with PostgresAuditStore(postgres_url) as reader:
            assert read == reader.leaves(0, 4)
        assert writer.leaves(0, 4) == read  # and again, with nothing remembered
    assert read[0] == canonical_bytes(records[0])
    assert read[1] != canonical_bytes(records[1])
    assert read[2] != canonical_bytes(records[2])
    assert read[3] == b"{}"


@NO_PG
def test_pg_reconnects_after_the_connection_drops(postgres_url: str) -> None:
    """The audit sink retries on ``AuditError``; the store must then recover by itself."""
    with PostgresAuditStore(postgres_url) as store:
        store.append([record("evt-1")])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        # The first call may find the connection dead (AuditError); the next reconnects.
        with contextlib.suppress(AuditError):
            store.append([record("evt-2")])
        store.append([record("evt-2")])
        assert events(store.query()) == ["evt-1", "evt-2"]


@NO_PG
def test_pg_newer_schema_refused(postgres_url: str) -> None:
    PostgresAuditStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE audit_schema SET version = 99")
    with pytest.raises(AuditError, match="expected schema version 3, got 99"):
        PostgresAuditStore(postgres_url)


@NO_PG
def test_pg_concurrent_first_opens_create_the_schema_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            PostgresAuditStore(postgres_url).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://hub:s3cret@127.0.0.1:1/hub",
        "postgres://hub:s3cret@127.0.0.1:1/hub",
        "postgresql+psycopg://hub:s3cret@127.0.0.1:1/hub",
    ],
)
def test_pg_unreachable_is_a_clean_error_without_the_password(url: str, tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"postgresql://hub@127\.0\.0\.1:1/hub: cannot open") as e:
        open_store(HubSettings(data_dir=tmp_path, audit_url=url))
    assert "s3cret" not in str(e.value)


def test_redacted_url() -> None:
    assert redacted_url("postgresql://u:pw@h:5/db?sslmode=require") == "postgresql://u@h:5/db"
    assert redacted_url("postgresql:///db") == "postgresql:///db"
    assert "pw" not in redacted_url("postgresql://u:pw@[bad")
