"""The seen-event store (``hub.agents.seen``): real SQLite files under ``tmp_path``.

Two ``SeenEvents`` on one file stand for two worker processes of one hub (each has its own
connection, so SQLite's locking is what keeps a claim exact, as it is between processes).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.agents.seen import FORGET_MARGIN, SeenEvents, delivered_lookup, forget_before
from hub.audit.log import AuditLog
from hub.audit.retention import plan_prune
from hub.audit.store import AuditStore
from hub.durable import GroupSync
from hub.models import event_key
from hub.settings import HubSettings
from hub.workflows.sqlite_state import STATE_CACHE_KIB, RegisterError
from tests.unit.test_audit_log import SIGNER, record

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
A = "hub.in.police.west-mercia/0/17"
#: another record of the same party: the same (source, id) again is a duplicate
B = "hub.in.police.west-mercia/2/4"
#: a record of another party: the same id from it is another event
C = "hub.in.council.redditch/2/4"
POLICE = "/parties/police.west-mercia"
COUNCIL = "/parties/council.redditch"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "seen-events.sqlite3"


@pytest.fixture
def seen(path: Path) -> Iterator[SeenEvents]:
    with SeenEvents(path) as store:
        yield store


def seen_at(store: SeenEvents, event_id: str) -> str:
    row = store._conn.execute(
        "SELECT seen_at FROM seen_events WHERE event_id = ?", (event_id,)
    ).fetchone()
    assert row is not None
    return str(row[0])


# -- first and remember --------------------------------------------------------------------


def test_unknown_id_was_never_seen(seen: SeenEvents) -> None:
    assert seen.first("evt-1") is None
    assert seen.count() == 0


def test_remember_claims_the_id_for_its_origin(seen: SeenEvents) -> None:
    assert seen.remember("evt-1", origin=A, at=T0) == A
    assert seen.first("evt-1") == A
    assert seen.first("evt-2") is None
    assert seen.count() == 1


def test_the_same_record_again_keeps_its_claim(seen: SeenEvents) -> None:
    # a reprocess after a crash: same record, same origin, later clock
    seen.remember("evt-1", origin=A, at=T0)
    assert seen.remember("evt-1", origin=A, at=T0 + timedelta(hours=1)) == A
    assert seen.count() == 1
    assert seen_at(seen, "evt-1") == T0.isoformat(timespec="microseconds")


def test_a_second_worker_gets_the_first_workers_origin(path: Path) -> None:
    with SeenEvents(path) as one, SeenEvents(path) as two:
        assert one.remember("evt-1", origin=A, at=T0) == A
        assert two.first("evt-1") == A  # the other worker's lookup is exact
        assert two.remember("evt-1", origin=B, at=T0 + timedelta(seconds=1)) == A
        assert one.first("evt-1") == two.first("evt-1") == A  # the loser overwrote nothing
        assert seen_at(two, "evt-1") == T0.isoformat(timespec="microseconds")
        assert two.count() == 1


def test_racing_workers_agree_on_one_winner_per_id(path: Path) -> None:
    ids = [f"evt-{i}" for i in range(200)]
    stores = [SeenEvents(path), SeenEvents(path)]
    start = threading.Barrier(2)
    claims: list[dict[str, str]] = [{}, {}]

    def work(n: int, origin: str) -> None:
        start.wait()
        for event_id in ids:
            claims[n][event_id] = stores[n].remember(event_id, origin=origin, at=T0)

    threads = [threading.Thread(target=work, args=(n, o)) for n, o in enumerate((A, B))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert claims[0] == claims[1]  # both claimants were told the same holder
        assert set(claims[0].values()) <= {A, B}
        for event_id, holder in claims[0].items():
            assert stores[0].first(event_id) == holder
        assert stores[0].count() == len(ids)
    finally:
        for store in stores:
            store.close()


def test_the_same_id_from_another_party_is_another_event(seen: SeenEvents) -> None:
    assert seen.remember("evt-1", origin=A, at=T0) == A
    assert seen.first(event_key(COUNCIL, "evt-1")) is None
    assert seen.remember("evt-1", origin=C, at=T0 + timedelta(seconds=1)) == C
    assert seen.first(event_key(POLICE, "evt-1")) == A
    assert seen.first(event_key(COUNCIL, "evt-1")) == C
    assert seen.first("evt-1") == A  # a bare id: the earliest of any source
    assert seen.count() == 2


def test_an_explicit_source_overrides_the_origin_topic(seen: SeenEvents) -> None:
    seen.remember("evt-1", origin=A, at=T0, source=COUNCIL)
    assert seen.first(event_key(COUNCIL, "evt-1")) == A
    assert seen.first(event_key(POLICE, "evt-1")) is None


def test_a_store_keyed_by_id_alone_is_migrated_with_sources_from_origins(path: Path) -> None:
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE seen_events (event_id TEXT PRIMARY KEY, origin TEXT NOT NULL, "
        "seen_at TEXT NOT NULL) WITHOUT ROWID"
    )
    old.execute("CREATE INDEX seen_events_seen_at ON seen_events (seen_at)")
    stamp = T0.isoformat(timespec="microseconds")
    old.executemany(
        "INSERT INTO seen_events VALUES (?, ?, ?)",
        [("evt-1", A, stamp), ("evt-2", "hub.in.redditch-bc.housing-repairs/1/9", stamp)],
    )
    old.commit()
    old.close()
    with SeenEvents(path) as one, SeenEvents(path) as two:  # the second finds it migrated
        assert one.first(event_key(POLICE, "evt-1")) == A
        assert two.first(event_key("/parties/redditch-bc.housing-repairs", "evt-2")) == (
            "hub.in.redditch-bc.housing-repairs/1/9"
        )
        # the old rows still guard their events, and now only those
        assert one.remember("evt-1", origin=B, at=T0) == A
        assert one.remember("evt-1", origin=C, at=T0) == C
        assert two.count() == 3
        assert seen_at(two, "evt-1") == stamp
        assert one.prune(T0 + timedelta(seconds=1)) == 3


def test_recipients_kept_with_the_claim_say_who_may_acknowledge(path: Path) -> None:
    with SeenEvents(path) as one, SeenEvents(path) as two:  # two workers
        one.remember("evt-1", origin=A, at=T0, recipients={"probation", "hw-icb"})
        one.remember("evt-1", origin=C, at=T0, recipients={"probation"})
        one.remember("evt-2", origin=A, at=T0)  # recipients not known
        assert two.delivered("evt-1", "probation") == {
            ("police.west-mercia", None),
            ("council.redditch", None),
        }
        assert two.delivered("evt-1", "hw-icb") == {("police.west-mercia", None)}
        assert two.delivered("evt-1", "hw") == set()  # whole party ids only
        assert two.delivered("evt-2", "probation") == set()
        assert two.delivered("evt-3", "probation") == set()


def test_the_delivered_lookup_asks_the_claims_and_the_audit_store(
    seen: SeenEvents,
) -> None:
    asked: list[tuple[str, str]] = []

    def older(event_id: str, party: str) -> set[tuple[str, str | None]]:
        asked.append((event_id, party))
        return {("from-the-audit-store", "t")}

    seen.remember("evt-1", origin=A, at=T0, recipients={"probation"})
    lookup = delivered_lookup(seen, older=older)
    assert set(lookup("evt-1", "probation")) == {
        ("police.west-mercia", None),
        ("from-the-audit-store", "t"),
    }
    assert set(lookup("evt-2", "probation")) == {("from-the-audit-store", "t")}
    assert asked == [("evt-1", "probation"), ("evt-2", "probation")]
    assert set(delivered_lookup(seen, older=None)("evt-1", "probation")) == {
        ("police.west-mercia", None)
    }
    assert set(delivered_lookup(seen, older=None)("evt-2", "probation")) == set()


def test_the_audit_store_gives_the_type_of_an_event_the_claims_know(seen: SeenEvents) -> None:
    seen.remember("evt-1", origin=A, at=T0, recipients={"probation"})
    lookup = delivered_lookup(seen, older=lambda _e, _p: {("police.west-mercia", "t")})
    assert set(lookup("evt-1", "probation")) == {("police.west-mercia", "t")}


def test_a_store_keyed_by_source_without_recipients_gets_the_column(path: Path) -> None:
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE seen_events (event_id TEXT NOT NULL, source TEXT NOT NULL, "
        "origin TEXT NOT NULL, seen_at TEXT NOT NULL, PRIMARY KEY (event_id, source)) "
        "WITHOUT ROWID"
    )
    old.execute("INSERT INTO seen_events VALUES ('evt-1', ?, ?, 'x')", (POLICE, A))
    old.commit()
    old.close()
    with SeenEvents(path) as store:
        assert store.first(event_key(POLICE, "evt-1")) == A
        assert store.delivered("evt-1", "probation") == set()
        store.remember("evt-2", origin=A, at=T0, recipients={"probation"})
        assert store.delivered("evt-2", "probation") == {("police.west-mercia", None)}


def test_reopened_store_remembers(path: Path) -> None:
    with SeenEvents(path) as store:
        store.remember("evt-1", origin=A, at=T0)
    with SeenEvents(path) as store:
        assert store.first("evt-1") == A
        assert store.remember("evt-1", origin=B, at=T0) == A
        assert store.count() == 1


# -- prune ---------------------------------------------------------------------------------


def test_prune_forgets_ids_seen_strictly_before_the_cut_off(seen: SeenEvents) -> None:
    for i in range(4):
        seen.remember(f"evt-{i}", origin=A, at=T0 + timedelta(seconds=i))
    assert seen.prune(T0 + timedelta(seconds=2)) == 2
    assert [seen.first(f"evt-{i}") for i in range(4)] == [None, None, A, A]
    assert seen.count() == 2
    assert seen.prune(T0 + timedelta(seconds=2)) == 0  # nothing left before it


def test_prune_compares_instants_not_text(seen: SeenEvents) -> None:
    plus_one = timezone(timedelta(hours=1))
    # 09:59:59 at +01:00 is 08:59:59 UTC: before the cut-off, though its text is later
    seen.remember("early", origin=A, at=datetime(2024, 5, 1, 9, 59, 59, tzinfo=plus_one))
    # a whole second and a fraction of one: microseconds always written, so text order holds
    seen.remember("on-time", origin=A, at=T0)
    seen.remember("just-after", origin=A, at=T0 + timedelta(microseconds=1))
    seen.remember("naive-late", origin=A, at=datetime(2024, 5, 1, 10, 0))  # naive = UTC
    assert seen.prune(T0) == 1
    assert seen.first("early") is None
    assert [seen.first(i) for i in ("on-time", "just-after", "naive-late")] == [A, A, A]
    assert seen.prune(datetime(2024, 5, 1, 10, 0, tzinfo=plus_one)) == 0  # 09:00 UTC
    assert seen.prune(T0 + timedelta(microseconds=1)) == 1
    assert seen.first("on-time") is None


@pytest.mark.parametrize("old", [5, 4])  # a last chunk part full, and one exactly full
def test_prune_deletes_in_chunks_until_none_are_left(seen: SeenEvents, old: int) -> None:
    for i in range(old):
        seen.remember(f"old-{i}", origin=A, at=T0)
    seen.remember("new", origin=A, at=T0 + timedelta(days=1))
    statements: list[str] = []
    seen._conn.set_trace_callback(statements.append)
    assert seen.prune(T0 + timedelta(hours=1), chunk=2) == old
    deletes = [s for s in statements if s.startswith("DELETE")]
    assert len(deletes) == old // 2 + 1  # one transaction per chunk, the last one short
    assert statements.count("COMMIT") == len(deletes)
    assert seen.count() == 1
    assert seen.first("new") == A


def test_prune_refuses_an_empty_chunk(seen: SeenEvents) -> None:
    with pytest.raises(ValueError, match="expected at least 1, got 0"):
        seen.prune(T0, chunk=0)


# -- durability: group commit --------------------------------------------------------------


def synchronous(store: SeenEvents) -> int:
    row = store._conn.execute("PRAGMA synchronous").fetchone()
    assert row is not None
    return int(row[0])


def test_remember_marks_the_group_dirty_and_lookups_do_not(path: Path) -> None:
    group = GroupSync()
    with SeenEvents(path, group=group) as store:
        assert synchronous(store) == 1  # NORMAL: the round fsyncs the WAL instead
        store.first("evt-1")
        assert group.position == 0
        store.remember("evt-1", origin=A, at=T0)
        assert group.position == 1  # an ack waiting for this position waits for the id
        store.first("evt-1")
        store.count()
        assert group.position == 1


def test_ungrouped_store_fsyncs_every_commit(path: Path) -> None:
    with SeenEvents(path) as store:
        assert synchronous(store) == 2  # FULL: the sweep's own connection


@pytest.mark.usefixtures("no_syncfs")
def test_round_fsyncs_the_seen_store_wal(path: Path, fsynced: list[str]) -> None:
    group = GroupSync()
    with SeenEvents(path, group=group) as store:
        store.remember("evt-1", origin=A, at=T0)
        store.remember("evt-2", origin=B, at=T0)
        assert fsynced == []  # committed, not yet synced
        group.sync_to(group.position)
        assert fsynced == [os.path.realpath(path) + "-wal"]  # once for both ids
        assert group.synced == 2


# -- errors and settings -------------------------------------------------------------------


def test_unusable_file_is_a_register_error_naming_the_store(tmp_path: Path) -> None:
    where = tmp_path / "seen-events.sqlite3"
    where.mkdir()  # a directory where the file should be
    with pytest.raises(RegisterError, match=r"^seen-event store .*: cannot open"):
        SeenEvents(where)


def test_sqlite_failure_while_remembering_is_a_register_error(seen: SeenEvents) -> None:
    seen._conn.execute("DROP TABLE seen_events")
    with pytest.raises(RegisterError, match="seen-event store") as caught:
        seen.remember("evt-1", origin=A, at=T0)
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    with pytest.raises(RegisterError, match="seen-event store"):
        seen.first("evt-1")


def test_settings_put_the_store_in_the_data_dir(tmp_path: Path) -> None:
    assert HubSettings(data_dir=tmp_path).seen_path == tmp_path / "seen-events.sqlite3"


# -- forgetting follows the audit log's prunes ----------------------------------------------


def grow(store: AuditStore, n: int) -> AuditLog:
    """Records 0 .. n-1 (record i written at T0 + i seconds), checkpointed every three."""
    log = AuditLog(store, signer=SIGNER)
    for i in range(n):
        store.append([record(i)])
        if (i + 1) % 3 == 0:
            log.checkpoint()
    return log


def test_nothing_pruned_means_every_id_is_kept(store: AuditStore) -> None:
    assert forget_before(store) is None  # an empty log
    grow(store, 6)
    assert forget_before(store) is None  # records, none pruned


def test_ids_are_forgotten_only_a_margin_before_the_oldest_kept_record(
    store: AuditStore, seen: SeenEvents
) -> None:
    log = grow(store, 16)
    log.prune(
        plan_prune(store, before=T0 + timedelta(seconds=10), held_cases=set()), reason="r", by="b"
    )
    assert store.prunes()[-1].size == 10
    before = forget_before(store)
    assert before == record(10).time - FORGET_MARGIN  # record 10 is the oldest kept
    seen.remember("evt-old", origin=A, at=before - timedelta(seconds=1))
    seen.remember("evt-margin", origin=A, at=before + timedelta(seconds=1))
    seen.remember("evt-kept", origin=A, at=record(10).time)
    assert seen.prune(before) == 1
    assert seen.first("evt-old") is None
    assert seen.first("evt-margin") == seen.first("evt-kept") == A


def test_a_legal_hold_keeps_the_ids_of_the_records_it_keeps(
    store: AuditStore, seen: SeenEvents
) -> None:
    log = grow(store, 16)
    held = plan_prune(
        store, before=T0 + timedelta(seconds=10), held_cases={record(4).case_pseudonym or ""}
    )
    assert (held.end, held.stop) == (4, "legal hold")  # stops at the held case's first record
    log.prune(held, reason="r", by="b")
    before = forget_before(store)
    assert before == record(4).time - FORGET_MARGIN
    # record 4's event is past the cut-off the prune was asked for, but its record is kept:
    # so is its id, and a replay of it is still recognised
    seen.remember(record(4).event_id, origin=A, at=record(4).time)
    assert seen.prune(before) == 0
    assert seen.first(record(4).event_id) == A


def test_a_state_store_keeps_a_bounded_page_cache(path: Path) -> None:
    """Each store a worker holds (seen events, outbox, registers) fills its page cache as its
    file grows: 1 MiB each (``STATE_CACHE_KIB``), not SQLite's default 2 MiB."""
    with SeenEvents(path) as store:
        row = store._conn.execute("PRAGMA cache_size").fetchone()
    assert row is not None
    assert row[0] == -STATE_CACHE_KIB == -1024
