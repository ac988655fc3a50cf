"""The audit Merkle log over a real SQLite store: checkpoints, proofs, and tamper detection."""

from __future__ import annotations

import base64
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audit.checkpoint import Checkpoint, NoteSigner
from hub.audit.log import AuditLog
from hub.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from hub.audit.sqlite import _COLUMNS, SQLiteAuditStore, _row, canonical_bytes
from hub.errors import AuditError, AuditIntegrityError
from hub.models import AuditDecision, AuditRecord, record_id_for

ORIGIN = "test-csp.hub/audit"
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def record(i: int) -> AuditRecord:
    event_id = f"evt-{i // 2}"
    recipient = "council.housing" if i % 2 else "west-mercia-police"
    return AuditRecord(
        record_id=record_id_for(event_id, recipient, AuditDecision.DELIVERED),
        time=T0 + timedelta(seconds=i),
        event_id=event_id,
        event_type="uk.csp.marac.flag.raised.v1",
        event_time=T0,
        publisher="police",
        recipient=recipient,
        decision=AuditDecision.DELIVERED,
        rule="marac-to-housing",
        reason="rule matched",
        lawful_basis="UK GDPR 6(1)(e)",
        fields=("case_ref", "risk"),
        payload_sha256="ab" * 32,
        case_pseudonym=f"case-{i}",
        subject_pseudonyms=(f"subj-{i}", "subj-shared"),
        condition="risk >= high",
        purpose="safeguarding",
        protocol_hash="cd" * 32,
        origin=f"hub.in.police/0/{i}",
        ack_event_id=f"ack-{i}",
    )


def build(path: Path, n: int, *, every: int = 1) -> AuditLog:
    """A store of n records, one append per record, a checkpoint every ``every`` records."""
    store = SQLiteAuditStore(path)
    log = AuditLog(store, signer=SIGNER)
    for i in range(n):
        store.append([record(i)])
        if (i + 1) % every == 0:
            log.checkpoint()
    return log


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite3"


@pytest.fixture
def log8(db: Path) -> Iterator[AuditLog]:
    log = build(db, 8)
    yield log
    log._store.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def seq_of(path: Path, index: int) -> int:
    with raw(path) as conn:
        (seq,) = conn.execute(
            "SELECT seq FROM audit_records ORDER BY seq LIMIT 1 OFFSET ?", (index,)
        ).fetchone()
    return int(seq)


def test_untampered_log_verifies(log8: AuditLog) -> None:
    report = log8.verify()
    assert report.ok
    assert report.first is None
    assert report.size == 8
    assert report.checkpoints_checked == 8
    assert report.root == MerkleTree(leaf_hash(canonical_bytes(record(i))) for i in range(8)).root()


def test_checkpoint_note_is_signed_tree_head(log8: AuditLog) -> None:
    note = log8.checkpoint()
    head = SIGNER.verifier().open_checkpoint(note)
    assert (head.origin, head.size, head.root_hash) == (ORIGIN, 8, log8.root())
    assert log8._store.checkpoints()[-1] == (8, note)


def test_inclusion_proofs_for_an_event_verify_independently(log8: AuditLog) -> None:
    proofs = log8.inclusion_proofs("evt-2")
    assert [p.leaf_index for p in proofs] == [4, 5]
    for proof in proofs:
        head = SIGNER.verifier().open_checkpoint(proof.checkpoint)
        assert head.size == proof.tree_size > proof.leaf_index
        assert proof.leaf_hash == leaf_hash(canonical_bytes(record(proof.leaf_index)))
        verify_inclusion(
            leaf=proof.leaf_hash,
            index=proof.leaf_index,
            size=head.size,
            proof=proof.proof,
            root=head.root_hash,
        )
        assert proof.to_json()["proof"] == [base64.b64encode(h).decode() for h in proof.proof]


def test_inclusion_proof_by_record_id_and_unknown(log8: AuditLog) -> None:
    rid = record(3).record_id
    (proof,) = log8.inclusion_proofs(rid)
    assert (proof.leaf_index, proof.event_id) == (3, "evt-1")
    with pytest.raises(AuditError, match="expected a stored event or record id"):
        log8.inclusion_proofs("nope")


def test_inclusion_proof_signs_a_checkpoint_when_none_covers(db: Path) -> None:
    log = build(db, 3, every=100)
    assert log._store.checkpoints() == []
    (proof,) = log.inclusion_proofs(record(2).record_id)
    assert proof.tree_size == 3
    assert len(log._store.checkpoints()) == 1


def test_consistency_proof_between_checkpoints(log8: AuditLog) -> None:
    result = log8.consistency_proof(3, 8)
    assert result.old_checkpoint is not None
    assert result.new_checkpoint is not None
    old = SIGNER.verifier().open_checkpoint(result.old_checkpoint)
    new = SIGNER.verifier().open_checkpoint(result.new_checkpoint)
    verify_consistency(
        old_size=3, new_size=8, old_root=old.root_hash, new_root=new.root_hash, proof=result.proof
    )
    with pytest.raises(AuditIntegrityError):
        log8.consistency_proof(0, 8)
    with pytest.raises(AuditIntegrityError):
        log8.consistency_proof(3, 9)


COLUMNS = list(_COLUMNS)


def mutate_text(value: str, pos: int) -> str:
    i = pos % len(value)
    return value[:i] + chr(ord(value[i]) ^ 1) + value[i + 1 :]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    index=st.integers(0, 5),
    column=st.sampled_from(COLUMNS),
    pos=st.integers(0, 10_000),
    every=st.sampled_from([1, 3]),
)
def test_any_single_byte_change_is_found_at_its_index(
    index: int, column: str, pos: int, every: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.sqlite3"
        log = build(path, 6, every=every)
        seq = seq_of(path, index)
        with raw(path) as conn:
            (value,) = conn.execute(
                f"SELECT {column} FROM audit_records WHERE seq = ?",  # noqa: S608
                (seq,),
            ).fetchone()
            if isinstance(value, bytes):
                i = pos % len(value)
                new: object = value[:i] + bytes([value[i] ^ 1]) + value[i + 1 :]
            else:
                assert isinstance(value, str)
                new = mutate_text(value, pos)
            conn.execute(
                f"UPDATE audit_records SET {column} = ? WHERE seq = ?",  # noqa: S608
                (new, seq),
            )
        report = log.verify()
        log._store.close()
    assert not report.ok
    assert report.first is not None
    assert report.first.index == index


def test_subject_index_edit_is_found(db: Path, log8: AuditLog) -> None:
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_subjects WHERE seq = ?", (seq_of(db, 6),))
    first = log8.verify().first
    assert first is not None
    assert (first.kind, first.index) == ("record", 6)


def rewrite(db: Path, index: int, new: AuditRecord) -> None:
    """A careful forger: canonical bytes and every column changed together."""
    sets = ", ".join(f"{c} = ?" for c in _COLUMNS)
    with raw(db) as conn:
        conn.execute(
            f"UPDATE audit_records SET {sets} WHERE seq = ?",  # noqa: S608
            (*_row(new), seq_of(db, index)),
        )


def test_consistent_rewrite_is_found_by_the_checkpoint(db: Path, log8: AuditLog) -> None:
    forged = record(5).model_copy(update={"recipient": "someone-else"})
    rewrite(db, 5, forged)
    report = log8.verify()
    assert report.first is not None
    assert (report.first.kind, report.first.index, report.first.size) == ("checkpoint", 5, 6)
    assert all(f.kind == "checkpoint" for f in report.findings)


def test_sparse_checkpoints_give_a_window(db: Path) -> None:
    log = build(db, 8, every=4)
    rewrite(db, 6, record(6).model_copy(update={"rule": "forged"}))
    first = log.verify().first
    assert first is not None
    assert (first.index, first.size) == (4, 8)


def test_deletion_is_found(db: Path, log8: AuditLog) -> None:
    seq = seq_of(db, 3)
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_subjects WHERE seq = ?", (seq,))
        conn.execute("DELETE FROM audit_records WHERE seq = ?", (seq,))
    report = log8.verify()
    assert report.size == 7
    assert report.first is not None
    assert report.first.index == 3
    assert any("holds only 7 records" in f.message for f in report.findings)


def test_truncated_tail_is_found(db: Path, log8: AuditLog) -> None:
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_subjects WHERE seq = ?", (seq_of(db, 7),))
        conn.execute("DELETE FROM audit_records WHERE seq = ?", (seq_of(db, 7),))
    first = log8.verify().first
    assert first is not None
    assert first.index == 7


def test_reordering_is_found(db: Path, log8: AuditLog) -> None:
    a, b = seq_of(db, 2), seq_of(db, 5)
    with raw(db) as conn:
        for table in ("audit_records", "audit_subjects"):
            conn.execute(f"UPDATE {table} SET seq = -1 WHERE seq = ?", (a,))  # noqa: S608
            conn.execute(f"UPDATE {table} SET seq = ? WHERE seq = ?", (a, b))  # noqa: S608
            conn.execute(f"UPDATE {table} SET seq = ? WHERE seq = -1", (b,))  # noqa: S608
    report = log8.verify()
    assert report.first is not None
    assert report.first.index == 2
    # the checkpoints, and the stored positions, which name the two rows moved
    assert {f.kind for f in report.findings} == {"checkpoint", "record"}
    assert [f.index for f in report.findings if f.kind == "record"] == [2, 5]


def test_insertion_is_found(db: Path, log8: AuditLog) -> None:
    forged = record(100)
    seq = seq_of(db, 4)
    with raw(db) as conn:
        for table in ("audit_records", "audit_subjects"):
            conn.execute(f"UPDATE {table} SET seq = seq + 1000 WHERE seq >= ?", (seq,))  # noqa: S608
            conn.execute(f"UPDATE {table} SET seq = seq - 999 WHERE seq >= 1000", ())  # noqa: S608
        marks = ", ".join("?" for _ in _COLUMNS)
        conn.execute(
            f"INSERT INTO audit_records (seq, {', '.join(_COLUMNS)}) VALUES (?, {marks})",  # noqa: S608
            (seq, *_row(forged)),
        )
        conn.executemany(
            "INSERT INTO audit_subjects (seq, pseudonym) VALUES (?, ?)",
            [(seq, p) for p in forged.subject_pseudonyms],
        )
    report = log8.verify()
    assert report.size == 9
    assert report.first is not None
    assert report.first.index == 4


def test_forged_or_foreign_checkpoint_is_reported(db: Path, log8: AuditLog) -> None:
    other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    log8._store.save_checkpoint(8, other.sign(f"{ORIGIN}\n8\n{'A' * 43}=\n"))
    report = log8.verify()
    assert [f.kind for f in report.findings] == ["signature"]
    assert report.first is not None
    assert report.first.index is None


def test_parties_copies_catch_a_rewrite_after_checkpoints_are_dropped(
    db: Path, log8: AuditLog
) -> None:
    kept = [note for _, note in log8._store.checkpoints()]
    rewrite(db, 1, record(1).model_copy(update={"reason": "forged"}))
    with raw(db) as conn:
        conn.execute("DELETE FROM audit_checkpoints")
    assert log8.verify().ok  # nothing local commits to the old history any more
    first = log8.verify(checkpoints=kept).first
    assert first is not None
    assert first.index == 1


def test_checkpoint_refuses_to_sign_over_altered_history(db: Path, log8: AuditLog) -> None:
    rewrite(db, 7, record(7).model_copy(update={"reason": "forged"}))
    with SQLiteAuditStore(db) as store:
        fresh = AuditLog(store, signer=SIGNER)  # a new process: reads the altered rows
        with pytest.raises(AuditIntegrityError, match="run `hub audit verify`"):
            fresh.checkpoint()
        with pytest.raises(AuditIntegrityError, match="run `hub audit verify`"):
            fresh.inclusion_proofs("evt-3")


def test_the_next_checkpoint_trusts_only_its_own_note_as_stored(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink's next checkpoint does not verify the note it signed itself again (it is the
    newest stored, byte for byte); any other newest note is verified, and a forged one is
    refused as before."""
    with SQLiteAuditStore(db) as store:
        log = AuditLog(store, signer=SIGNER, heads_only=True)
        store.append([record(0)])
        log.checkpoint()
        opened: list[str] = []
        real = log._verifier.open_checkpoint

        def counted(note: str, *, origin: str | None = None) -> Checkpoint:
            opened.append(note)
            return real(note, origin=origin)

        monkeypatch.setattr(log._verifier, "open_checkpoint", counted)
        store.append([record(1)])
        log.checkpoint()
        assert opened == []
        other = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        forged = other.sign(Checkpoint(ORIGIN, 2, log.root()).body())
        store.save_checkpoint(2, forged)
        store.append([record(2)])
        with pytest.raises(AuditIntegrityError):
            log.checkpoint()
        assert opened == [forged]


def test_store_leaf_helpers(db: Path, log8: AuditLog) -> None:
    store = log8._store
    assert store.size() == 8
    assert store.leaves(2, 4) == [canonical_bytes(record(2)), canonical_bytes(record(3))]
    assert store.leaves(7, 20) == [canonical_bytes(record(7))]
    assert store.record_index(record(6).record_id) == 6
    assert store.record_index("missing") is None
    assert store.mismatched_rows(0, 8) == []
    store.save_checkpoint(8, "x")
    store.save_checkpoint(8, "x")
    assert store.checkpoints()[-1] == (8, "x")
    assert len(store.checkpoints()) == 9


def test_existing_version_1_file_gains_checkpoint_table(db: Path) -> None:
    SQLiteAuditStore(db).close()
    with raw(db) as conn:
        # A version 1 file from before checkpoints (and audit retention) existed.
        conn.execute("DROP TABLE audit_checkpoints")
        conn.execute("DROP TABLE audit_pruned")
        conn.execute("PRAGMA user_version = 1")
    with SQLiteAuditStore(db) as store:
        assert store.checkpoints() == []
        assert store.prunes() == []
