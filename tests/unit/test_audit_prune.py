"""Audit retention: pruning a prefix of the Merkle log keeps every later proof verifiable.

The Merkle cases are properties over random logs; the log and store cases run against both
backends (SQLite and a throwaway PostgreSQL, ``tests/postgres.py``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audit.checkpoint import Checkpoint
from hub.audit.log import AuditLog
from hub.audit.merkle import (
    CompactRange,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from hub.audit.retention import PrunePlan, plan_prune, subtract_duration
from hub.audit.sqlite import SQLiteAuditStore, canonical_bytes
from hub.audit.store import AuditStore
from hub.errors import AuditError, AuditIntegrityError
from hub.models import AuditDecision
from tests.unit.conftest import Opener
from tests.unit.test_audit_log import ORIGIN, SIGNER, T0, record

CUT = T0 + timedelta(seconds=10)  # records 0..9 are older than this


# --- the Merkle tree from a pruned prefix ----------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=70),
    data=st.data(),
)
def test_pruned_tree_serves_every_proof_of_the_full_tree(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(b) for b in leaves]
    full = MerkleTree(hashes)
    n = full.size
    k = data.draw(st.integers(0, n), label="pruned")
    pruned = MerkleTree.from_frontier(k, full.frontier(k))
    pruned.extend(hashes[k:])
    for size in range(max(k, 1), n + 1):
        root = pruned.root(size)
        assert root == full.root(size)
        for index in range(k, size):
            proof = pruned.inclusion_proof(index, size)
            assert proof == full.inclusion_proof(index, size)
            verify_inclusion(leaf=hashes[index], index=index, size=size, proof=proof, root=root)
        for old in range(max(k, 1), size + 1):
            proof = pruned.consistency_proof(old, size)
            assert proof == full.consistency_proof(old, size)
            verify_consistency(
                old_size=old, new_size=size, old_root=full.root(old), new_root=root, proof=proof
            )
    resumed = CompactRange.from_frontier(k, full.frontier(k))
    for hash_ in hashes[k:]:
        resumed.append(hash_)
    assert resumed.root() == full.root()
    if k > 1:
        with pytest.raises(AuditError, match="pruned under audit retention"):
            pruned.root(k - 1)
        with pytest.raises(AuditError, match="pruned under audit retention"):
            pruned.consistency_proof(k - 1, n)
    if k and n > k:
        with pytest.raises(AuditError, match="pruned under audit retention"):
            pruned.inclusion_proof(k - 1, n)


def test_frontier_must_have_one_hash_per_set_bit() -> None:
    with pytest.raises(AuditIntegrityError, match="expected 2 subtree hashes, got 1"):
        MerkleTree.from_frontier(5, [b"\0" * 32])
    with pytest.raises(AuditIntegrityError, match="expected 32 bytes"):
        CompactRange.from_frontier(1, [b"\0" * 31])


@pytest.mark.parametrize(
    ("when", "duration", "expected"),
    [
        (datetime(2030, 2, 28, tzinfo=UTC), "P6Y", datetime(2024, 2, 28, tzinfo=UTC)),
        (datetime(2024, 2, 29, tzinfo=UTC), "P1Y", datetime(2023, 2, 28, tzinfo=UTC)),
        (datetime(2024, 3, 31, tzinfo=UTC), "P1M", datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2024, 1, 15, tzinfo=UTC), "P1Y2M", datetime(2022, 11, 15, tzinfo=UTC)),
        (datetime(2024, 1, 15, tzinfo=UTC), "P2W1DT12H", datetime(2023, 12, 30, 12, tzinfo=UTC)),
    ],
)
def test_subtract_duration_by_the_calendar(
    when: datetime, duration: str, expected: datetime
) -> None:
    assert subtract_duration(when, duration) == expected


@pytest.mark.parametrize("bad", ["6Y", "P", "PT", "P1YT", "p6y", "P6Y ", "P1.5Y"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(AuditError, match="expected an ISO 8601 duration"):
        subtract_duration(T0, bad)


# --- the log over both stores --------------------------------------------------------------


def execute(location: str, sql: str, *params: object) -> None:
    """Change the store behind its back, as someone with database access could."""
    if location.startswith("sqlite:///"):
        conn = sqlite3.connect(location.removeprefix("sqlite:///"))
        try:
            conn.execute(sql.replace("%s", "?"), params)
            conn.commit()
        finally:
            conn.close()
    else:
        with psycopg.connect(location, autocommit=True) as pg:
            pg.execute(sql.encode(), params)


def grow(log: AuditLog, store: AuditStore, n: int, *, every: int = 3) -> None:
    """Append records ``size .. size + n - 1``, signing a checkpoint every ``every``."""
    first = store.size()
    for i in range(first, first + n):
        store.append([record(i)])
        if (i + 1) % every == 0:
            log.checkpoint()


def plan(
    store: AuditStore, *, before: datetime = CUT, held: frozenset[str] = frozenset()
) -> PrunePlan:
    return plan_prune(store, before=before, held_cases=set(held))


def test_prune_keeps_every_later_root_and_proof(store: AuditStore, opener: Opener) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 16)
    roots = {s: log.root(s) for s in range(10, 17)}
    consistency = {(m, n): log.consistency_proof(m, n).proof for m in range(10, 17) for n in (16,)}

    the_plan = plan(store)
    assert (the_plan.start, the_plan.end, the_plan.stop) == (0, 10, "cut-off")
    result = log.prune(the_plan, reason="audit retention P6Y", by="ig-officer")

    assert result.deleted == 10
    assert store.size() == 17  # the 16 records and the audit record of the prune
    pruned_record = store.query(decision=AuditDecision.PRUNED)
    assert [r.record_id for r in pruned_record] == [result.record.record_id]
    assert "records [0, 10)" in pruned_record[0].reason
    assert "checkpoint at size 16 signed before pruning" in pruned_record[0].reason
    assert store.query(event_id="evt-0") == []  # record bodies gone
    assert store.record_index(record(10).record_id) == 10  # kept records keep their index
    with pytest.raises(AuditError, match="pruned under audit retention"):
        store.leaves(9, 10)

    with contextlib.closing(opener()) as other:
        fresh = AuditLog(other, signer=SIGNER)  # rebuilt from the kept hashes
        assert {s: fresh.root(s) for s in roots} == roots
        for (m, n), proof in consistency.items():
            assert fresh.consistency_proof(m, n).proof == proof
        included = fresh.inclusion_proofs(record(12).event_id)
        assert [p.leaf_index for p in included] == [12, 13]
        for item in included:
            # the unpruned tree (still cached by ``log``) agrees with every proof
            verify_inclusion(
                leaf=leaf_hash(canonical_bytes(record(item.leaf_index))),
                index=item.leaf_index,
                size=item.tree_size,
                proof=item.proof,
                root=log.root(item.tree_size),
            )
        report = fresh.verify()
        assert report.ok, report.findings
        assert report.pruned == 10
        assert report.checkpoints_unchecked == 0
        # every stored checkpoint (3, 6, 9 below the pruned size; 12, 15, 16, 17 above) checked
        assert report.checkpoints_checked == len(store.checkpoints()) == 7
        with pytest.raises(AuditError, match="pruned under audit retention"):
            fresh.consistency_proof(9, 16)


def test_checkpoints_below_the_pruned_size(store: AuditStore) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 4, every=100)
    # A copy a party kept of a checkpoint the store never saved (size 4).
    party_copy = SIGNER.sign(Checkpoint(origin=ORIGIN, size=4, root_hash=log.root(4)).body())
    grow(log, store, 12, every=3)  # stored checkpoints at 6, 9, 12, 15
    forged = SIGNER.sign(Checkpoint(origin=ORIGIN, size=6, root_hash=log.root(5)).body())
    log.prune(plan(store), reason="r", by="b")

    report = log.verify(checkpoints=[party_copy])
    assert report.ok, report.findings
    assert report.checkpoints_unchecked == 1
    assert report.checkpoints_checked == len(store.checkpoints())

    tampered = log.verify(checkpoints=[forged])
    assert [(f.kind, f.size) for f in tampered.findings] == [("checkpoint", 6)]


def test_one_byte_changed_in_a_kept_record_is_found_at_its_index(
    store: AuditStore, location: str
) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 16)
    log.prune(plan(store), reason="r", by="b")
    kept = record(13)
    execute(
        location,
        "UPDATE audit_records SET recipient = %s WHERE record_id = %s",
        "council.housinG",
        kept.record_id,
    )
    report = log.verify()
    assert not report.ok
    assert report.first is not None
    assert (report.first.kind, report.first.index) == ("record", 13)


def test_altered_kept_hashes_are_found(store: AuditStore, location: str) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 16)
    log.prune(plan(store), reason="r", by="b")
    execute(location, "UPDATE audit_pruned SET frontier = %s", b"\x01" * 64)
    report = AuditLog(store, signer=SIGNER).verify()
    assert not report.ok
    assert {f.kind for f in report.findings} == {"checkpoint"}
    assert all(f.index in (0, 10) for f in report.findings)


def test_a_second_prune_chains_to_the_first(store: AuditStore, opener: Opener) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 16)
    log.prune(plan(store), reason="first", by="b")  # [0, 10)
    grow(log, store, 6)
    second = plan(store, before=T0 + timedelta(seconds=14))
    assert (second.start, second.end) == (10, 14)
    log.prune(second, reason="second", by="b")

    with contextlib.closing(opener()) as other:
        fresh = AuditLog(other, signer=SIGNER)
        report = fresh.verify()
        assert report.ok, report.findings
        assert report.pruned == 14
        assert report.checkpoints_unchecked == 0
        assert report.checkpoints_checked == len(store.checkpoints())
    assert [p.size for p in store.prunes()] == [10, 14]


def test_a_legal_hold_ends_the_prefix(store: AuditStore) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 16)
    held = plan(store, held=frozenset({record(6).case_pseudonym or ""}))
    assert (held.end, held.stop, held.held_case) == (6, "legal hold", "case-6")
    assert "case case-6 is under legal hold" in held.describe()
    log.prune(held, reason="r", by="b")
    assert [r.case_pseudonym for r in store.query(limit=3)] == ["case-6", "case-7", "case-8"]
    assert log.verify().ok


def test_nothing_to_prune_and_a_stale_plan_are_refused(store: AuditStore) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 6)
    empty = plan(store, before=T0)
    assert empty.count == 0
    with pytest.raises(AuditError, match="expected records to prune"):
        log.prune(empty, reason="r", by="b")
    stale = plan(store)
    log.prune(plan(store, before=T0 + timedelta(seconds=2)), reason="r", by="b")
    with pytest.raises(AuditError, match="plan again"):
        log.prune(stale, reason="r", by="b")


def test_a_log_that_does_not_verify_is_not_pruned(store: AuditStore, location: str) -> None:
    log = AuditLog(store, signer=SIGNER)
    grow(log, store, 12)
    execute(
        location,
        "UPDATE audit_records SET recipient = %s WHERE record_id = %s",
        "x",
        record(2).record_id,
    )
    with pytest.raises(AuditIntegrityError, match="does not verify"):
        log.prune(plan(store), reason="r", by="b")
    assert store.prunes() == []
    assert store.query(event_id="evt-0") != []


def test_a_version_1_store_opens_and_upgrades(location: str, opener: Opener) -> None:
    with contextlib.closing(opener()) as first:
        first.append([record(0)])
    # Make it look like a store written by a hub before audit retention existed.
    execute(location, "DROP TABLE audit_pruned")
    if location.startswith("sqlite"):
        execute(location, "PRAGMA user_version = 1")
    else:
        execute(location, "UPDATE audit_schema SET version = 1")
    with contextlib.closing(opener()) as reopened:
        assert reopened.size() == 1
        assert reopened.prunes() == []
        assert [r.record_id for r in reopened.query()] == [record(0).record_id]
        log = AuditLog(reopened, signer=SIGNER)
        reopened.append([record(i) for i in range(1, 12)])
        log.checkpoint()
        log.prune(plan(reopened), reason="r", by="b")
        assert log.verify().ok


# --- a heads-only log (the audit sink's) signs the same checkpoints in bounded memory --------
# The sink signs checkpoints for as long as the hub runs; the whole Merkle tree cost it 64
# bytes a record for ever (the 10-minute soak's RSS climbed with it). A heads-only log keeps
# a compact range and a few recent roots; every check ``checkpoint`` makes is kept.


def _head(log: AuditLog, note: str) -> tuple[int, bytes]:
    head = log._open(note)
    return head.size, head.root_hash


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.integers(1, 40), min_size=1, max_size=12))
def test_heads_only_signs_the_roots_of_the_whole_tree(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int]
) -> None:
    path = tmp_path_factory.mktemp("heads") / "audit.sqlite3"
    with contextlib.closing(SQLiteAuditStore(path)) as store:
        heads = AuditLog(store, signer=SIGNER, heads_only=True)
        whole = AuditLog(store, signer=SIGNER)
        for n in batches:
            first = store.size()
            store.append([record(i) for i in range(first, first + n)])
            size, root = _head(heads, heads.checkpoint())
            assert (size, root) == (store.size(), whole.root(size))
        assert heads._tree.size == 0  # the whole tree was never built
        assert len(heads._range.frontier if heads._range else ()) == bin(store.size()).count("1")


def test_two_sinks_alternate_and_a_late_smaller_checkpoint_is_still_checked(
    store: AuditStore, opener: Opener
) -> None:
    # two workers, two sinks, one store: each checks the other's newest checkpoint, even one
    # saved late at a size it has already read past
    with contextlib.closing(opener()) as other:
        a = AuditLog(store, signer=SIGNER, heads_only=True)
        b = AuditLog(other, signer=SIGNER, heads_only=True)
        grow(a, store, 7)  # a stops at 3 and 6
        b.checkpoint()  # b at 7
        store.append([record(7), record(8)])
        a.checkpoint()  # a checks b's 7 on its way, then signs 9
        root_8 = AuditLog(other, signer=SIGNER).root(8)
        late = SIGNER.sign(Checkpoint(origin=ORIGIN, size=8, root_hash=root_8).body())
        store.append([record(9)])
        other.save_checkpoint(8, late)  # signed at 8 by a third, saved only now: the newest
        assert _head(a, store.checkpoints()[-1][1]) == (8, root_8)
        a._roots.clear()  # as if a had read past 8 without stopping there
        assert a._range is not None
        assert a._range.size == 9
        size, root = _head(a, a.checkpoint())  # recomputed from the store, and it matches
        assert (size, root) == (10, AuditLog(store, signer=SIGNER).root(10))


def test_a_changed_record_under_the_newest_checkpoint_is_refused(
    store: AuditStore, location: str
) -> None:
    grow(AuditLog(store, signer=SIGNER), store, 9)  # checkpoints at 3, 6, 9
    execute(
        location,
        "UPDATE audit_records SET canonical = %s WHERE record_id = %s",
        canonical_bytes(record(2)).replace(b"evt-1", b"evt-X"),
        record(2).record_id,
    )
    fresh = AuditLog(store, signer=SIGNER, heads_only=True)  # a restarted sink
    with pytest.raises(AuditIntegrityError, match="no longer match the checkpoint at size 9"):
        fresh.checkpoint()


def test_heads_only_carries_on_past_a_prune(store: AuditStore, opener: Opener) -> None:
    heads = AuditLog(store, signer=SIGNER, heads_only=True)
    grow(heads, store, 16)
    AuditLog(store, signer=SIGNER).prune(plan(store), reason="audit retention P6Y", by="ig")
    store.append([record(i) for i in range(17, 21)])
    with contextlib.closing(opener()) as other:
        restarted = AuditLog(other, signer=SIGNER, heads_only=True)  # from the kept frontier
        for log in (heads, restarted):
            size, root = _head(log, log.checkpoint())
            assert (size, root) == (store.size(), AuditLog(store, signer=SIGNER).root(size))
