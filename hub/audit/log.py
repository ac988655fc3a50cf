"""The tamper-evident audit log: an RFC 9162 Merkle tree over the audit store, with checkpoints.

Leaf i is the canonical bytes of the i-th stored record in append order; the hub signs
checkpoints (C2SP tlog-checkpoint notes) of the tree head and hands them to every party, so
anyone holding one can demand an inclusion proof for a record or a consistency proof
between two checkpoints, and check both with their own RFC 9162 implementation.

What ``AuditLog.verify`` can and cannot detect:

* A hand edit of one record's columns, or of its ``canonical`` bytes alone, is found at its
  exact index: the store re-derives every column from ``canonical`` and compares.
* A consistent rewrite (``canonical`` and columns changed together), a deleted, reordered or
  inserted record changes the Merkle root of every tree that covers it, so it is found at the
  first checkpoint whose size exceeds the changed index; the report names the size of the
  last checkpoint that still verifies, the first index the change can be at. With a
  checkpoint every N records the change is pinned to a window of N.
* Changes after the newest checkpoint are not detectable: nothing commits to them yet. That
  is why checkpoints are signed every N records or T seconds, and ``verify`` says how many
  records are in that tail (``VerifyReport.unsigned``).
* A column changed to another type, a position edited, a shared value or a checkpoint row
  altered: each is reported like any other edit, at its index; ``verify`` returns a report
  whatever the store holds, and never raises on what it finds there.
* Deleting stored checkpoints hides nothing from a party that kept its copy: pass those
  copies (``verify(checkpoints=...)``, ``hub audit verify --checkpoint FILE``). Forging one
  needs the log signing key.

After ``prune`` (audit retention, ``hub.audit.retention``) the records before K are gone but
their subtree hashes are kept: verification starts from those hashes at K, so every
checkpoint of size >= K is rechecked as before, and a checkpoint below K is rechecked
through the consistency proof to K kept when it was pruned (stored checkpoints always have
one; a party's copy at another size below K cannot be rechecked and is counted as such).
Altering the kept hashes changes the root at every size above K, so the checkpoints after
the prune find it.
"""

from __future__ import annotations

import base64
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from hub.audit.checkpoint import Checkpoint, NoteSigner
from hub.audit.merkle import (
    CompactRange,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from hub.audit.retention import PrunedPrefix, PrunePlan
from hub.audit.sqlite import canonical_bytes
from hub.audit.store import AuditStore
from hub.errors import AuditError, AuditIntegrityError
from hub.models import AuditDecision, AuditRecord, record_id_for

__all__ = [
    "AuditLog",
    "ConsistencyProof",
    "Finding",
    "InclusionProof",
    "PruneResult",
    "VerifyReport",
]

#: leaves read per store round trip when building or verifying the tree
_BATCH = 5000
#: roots at recent sizes a heads-only log remembers (a checkpoint signed elsewhere is recent)
_KEPT_ROOTS = 256
#: records of one event: a handful of recipients, never thousands
_MAX_EVENT_RECORDS = 10_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Finding:
    """One thing ``verify`` found wrong.

    Attributes:
        kind: ``record`` (a row altered by hand), ``checkpoint`` (a root that no longer
            matches: the change lies in ``[index, size)``), ``signature`` (a checkpoint
            note that does not verify, so it says nothing about the records) or ``pruned``
            (the hashes kept for a pruned prefix are malformed or do not chain).
        index: the altered record's leaf index, or for a checkpoint the first index the
            change can be at (the size of the last checkpoint that still verifies).
        size: the tree size of the checkpoint concerned, if any.
        message: what did not match.
    """

    kind: Literal["record", "checkpoint", "signature", "pruned"]
    index: int | None
    message: str
    size: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    """What ``AuditLog.verify`` recomputed and what did not match."""

    size: int
    root: bytes
    checkpoints_checked: int
    findings: tuple[Finding, ...] = ()
    #: records before this leaf index were pruned under audit retention (hashes kept)
    pruned: int = 0
    #: when the last prune ran, and its cut-off
    pruned_at: datetime | None = None
    pruned_before: datetime | None = None
    #: checkpoints below the pruned size with no kept proof (a party's copy): not rechecked
    checkpoints_unchecked: int = 0
    #: records after the newest checkpoint whose signature verifies: nothing commits to them
    #: yet, so a change to them is not detectable until the hub signs the next one
    unsigned: int = 0

    @property
    def ok(self) -> bool:
        """Whether every record and every checkpoint verified."""
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The finding that best locates the earliest change, or ``None`` if all verified.

        An altered record before the first failing checkpoint's size explains that
        checkpoint and is exact, so it wins; otherwise the failing checkpoint's window does.
        """
        if not self.findings:
            return None
        records = [f for f in self.findings if f.kind == "record"]
        heads = [f for f in self.findings if f.kind == "checkpoint"]
        head = min(heads, key=lambda f: (f.index or 0, f.size or 0), default=None)
        record = min(records, key=lambda f: f.index or 0, default=None)
        if record is not None and record.index is not None:
            if head is None or head.size is None or record.index < head.size:
                return record
        if head is not None:
            return head
        return self.findings[0]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (hashes base64)."""
        first = self.first
        return {
            "ok": self.ok,
            "tree_size": self.size,
            "root_hash": _b64(self.root),
            "checkpoints_checked": self.checkpoints_checked,
            "checkpoints_unchecked": self.checkpoints_unchecked,
            "pruned_records": self.pruned,
            "unsigned_records": self.unsigned,
            "pruned_before": None if self.pruned_before is None else self.pruned_before.isoformat(),
            "first_index": None if first is None else first.index,
            "findings": [
                {"kind": f.kind, "index": f.index, "message": f.message} for f in self.findings
            ],
        }


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 section 2.1.3 inclusion proof of one audit record against a checkpoint."""

    record_id: str
    event_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready proof (hashes base64, as in tlog-checkpoint and the RFC vectors)."""
        return {
            "record_id": self.record_id,
            "event_id": self.event_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": _b64(self.leaf_hash),
            "proof": [_b64(h) for h in self.proof],
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 section 2.1.4 consistency proof between two tree sizes."""

    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: tuple[bytes, ...]
    #: stored checkpoint notes at exactly these sizes, if any
    old_checkpoint: str | None = None
    new_checkpoint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready proof (hashes base64)."""
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_root": _b64(self.old_root),
            "new_root": _b64(self.new_root),
            "proof": [_b64(h) for h in self.proof],
            "old_checkpoint": self.old_checkpoint,
            "new_checkpoint": self.new_checkpoint,
        }


@dataclass(frozen=True)
class PruneResult:
    """What ``AuditLog.prune`` did: the plan carried out and the signed evidence of it."""

    plan: PrunePlan
    deleted: int
    record: AuditRecord
    checkpoint_before: str
    checkpoint_after: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "pruned": self.deleted,
            "from_index": self.plan.start,
            "to_index": self.plan.end,
            "before": self.plan.before.isoformat(),
            "stopped_by": self.plan.stop,
            "held_case": self.plan.held_case,
            "record_id": self.record.record_id,
            "checkpoint_before": self.checkpoint_before,
            "checkpoint_after": self.checkpoint_after,
        }


@dataclass
class _Heads:
    """Checkpoints grouped by size while verifying."""

    by_size: dict[int, list[Checkpoint]] = field(default_factory=dict)
    count: int = 0


class AuditLog:
    """The Merkle log over an ``AuditStore``: roots, signed checkpoints, proofs, verify.

    Proofs and checkpoints are served from a tree of every level of perfect subtrees, built
    once from the store and extended as records arrive (about 64 bytes per record held in
    memory; a ``heads_only`` log, the audit sink's, signs checkpoints without it). A
    long-lived instance therefore signs the history it read, even if the rows are altered
    later; ``verify`` always re-reads everything from the store.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        signer: NoteSigner,
        origin: str | None = None,
        heads_only: bool = False,
    ):
        """A log over ``store``; ``heads_only`` for a process that only signs checkpoints.

        With ``heads_only``, ``checkpoint`` keeps a compact range (a hash per set bit of the
        size) and the roots at a few recent sizes, not the whole tree: the audit sink, for as
        long as the hub runs, holds a few KiB however long the log grows (the whole tree held
        64 bytes a record for ever). Proofs still build the whole tree when asked.
        """
        self._store = store
        self._signer = signer
        self._verifier = signer.verifier()
        self.origin = signer.name if origin is None else origin
        self._tree = MerkleTree()
        self._heads_only = heads_only
        self._range: CompactRange | None = None
        self._roots: OrderedDict[int, bytes] = OrderedDict()  # size -> root, recent sizes
        self._opened: tuple[str, Checkpoint] | None = None  # the last note opened or signed

    def size(self) -> int:
        """Number of records (leaves) in the store now."""
        return self._store.size()

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all by default), RFC 9162 section 2.1.1."""
        tree = self._sync()
        return tree.root(size)

    def checkpoint(self) -> str:
        """Sign the current tree head, keep it in the store and return the note.

        Refuses to sign when the newest stored checkpoint does not match the stored records:
        signing over altered history would launder it, and tlog-checkpoint forbids signing
        a checkpoint inconsistent with an earlier one.

        Raises:
            AuditIntegrityError: the newest stored checkpoint does not match the records.
        """
        if self._heads_only:
            return self._checkpoint_from_range()
        tree = self._sync()
        stored = self._store.newest_checkpoint()
        if stored:
            previous = self._open(stored[1])
            # Below the pruned size the kept proofs check it (``verify``); a prune always
            # signs a newer checkpoint, so that happens only with checkpoints deleted by hand.
            if previous.size >= tree.pruned and (
                previous.size > tree.size or tree.root(previous.size) != previous.root_hash
            ):
                raise AuditIntegrityError(
                    f"checkpoint: the stored records no longer match the checkpoint at size "
                    f"{previous.size}; run `hub audit verify`"
                )
        return self._sign(tree.size, tree.root())

    def _checkpoint_from_range(self) -> str:
        """``checkpoint`` from the compact range: the same checks, the same note."""
        size = self._store.size()
        prunes = self._store.prunes()  # read once: every step below starts from the same one
        newest = prunes[-1] if prunes else None
        stored = self._store.newest_checkpoint()
        if stored:
            previous = self._open(stored[1])
            pruned = newest.size if newest else 0
            if previous.size >= pruned and (
                previous.size > size or self._root_at(previous.size, newest) != previous.root_hash
            ):
                raise AuditIntegrityError(
                    f"checkpoint: the stored records no longer match the checkpoint at size "
                    f"{previous.size}; run `hub audit verify`"
                )
        head_range = self._advance(size, newest)
        return self._sign(head_range.size, head_range.root())

    def _sign(self, size: int, root: bytes) -> str:
        """Sign and save the checkpoint of the tree head ``(size, root)``; its note.

        The note is kept with its head (``_open`` need not verify this log's own note again).
        """
        head = Checkpoint(origin=self.origin, size=size, root_hash=root)
        note = self._signer.sign(head.body())
        self._store.save_checkpoint(head.size, note)
        self._opened = (note, head)
        return note

    def _root_at(self, size: int, newest: PrunedPrefix | None) -> bytes:
        """MTH of the first ``size`` records, from the compact range where it can be.

        A size this instance has stopped at is remembered; a size ahead of the range is
        reached by stopping there. Only a size the range has already passed without stopping
        (another process signed a smaller checkpoint after this one read further) is
        recomputed from the store, reading every leaf up to it.
        """
        if size in self._roots:
            return self._roots[size]
        if self._range is None or self._range.size <= size:
            return self._advance(size, newest).root()
        return self._advance(size, newest, fresh=True).root()

    def _advance(
        self, size: int, newest: PrunedPrefix | None, *, fresh: bool = False
    ) -> CompactRange:
        """The compact range extended to ``size`` records (``fresh``: a new one, kept apart).

        A range behind ``newest`` (the store's newest prune) restarts from its kept frontier,
        as ``_sync`` does.
        """
        current = None if fresh else self._range
        if newest and (current is None or current.size < newest.size):
            current = CompactRange.from_frontier(newest.size, newest.frontier)
        elif current is None:
            current = CompactRange()
        while current.size < size:
            start = current.size
            batch = self._store.leaves(start, min(start + _BATCH, size))
            if not batch:
                break
            current.extend_leaves(batch)
        if not fresh:
            self._range = current
        self._roots[current.size] = current.root()
        self._roots.move_to_end(current.size)
        while len(self._roots) > _KEPT_ROOTS:
            self._roots.popitem(last=False)
        return current

    def inclusion_proofs(self, ref: str) -> list[InclusionProof]:
        """Inclusion proofs for a record id, or for every record of an event id.

        Each proof is against the newest stored checkpoint that covers the record; if none
        does yet, a checkpoint is signed now. Every proof is checked before it is returned.

        Raises:
            AuditError: no record has this record id or event id.
            AuditIntegrityError: the stored records do not match the checkpoint.
        """
        records = self._store.query(event_id=ref, limit=_MAX_EVENT_RECORDS)
        indexed = [(r.record_id, r.event_id, canonical_bytes(r)) for r in records]
        if not indexed and (index := self._store.record_index(ref)) is not None:
            (data,) = self._store.leaves(index, index + 1)
            found = AuditRecord.model_validate_json(data)
            if found.record_id != ref:
                raise AuditIntegrityError(
                    f"audit proof: leaf {index} of the log is not record {ref} (the stored "
                    f"records were changed by hand); run `hub audit verify`"
                )
            indexed = [(ref, found.event_id, data)]
        if not indexed:
            prunes = self._store.prunes()
            note = (
                f" (records written before {prunes[-1].before:%Y-%m-%d} were pruned under "
                f"audit retention)"
                if prunes
                else ""
            )
            raise AuditError(
                f"audit proof: expected a stored event or record id, got {ref!r}{note}"
            )
        proofs: list[InclusionProof] = []
        for record_id, event_id, data in indexed:
            index = self._store.record_index(record_id)
            if index is None:
                raise AuditError(f"audit proof: record {record_id} vanished from the store")
            note, head = self._covering_checkpoint(index)
            tree = self._sync()
            if tree.root(head.size) != head.root_hash:
                raise AuditIntegrityError(
                    f"audit proof: the stored records no longer match the checkpoint at size "
                    f"{head.size}; run `hub audit verify`"
                )
            path = tuple(tree.inclusion_proof(index, head.size))
            leaf = tree.leaf(index)
            # The index is the store's leaf number for the record, the tree follows seq
            # order: they agree unless rows were deleted, inserted or renumbered by hand, and
            # then the proof would be of another record.
            if leaf_hash(data) != leaf:
                raise AuditIntegrityError(
                    f"audit proof: leaf {index} of the log is not record {record_id} (the "
                    f"stored records were changed by hand); run `hub audit verify`"
                )
            verify_inclusion(
                leaf=leaf, index=index, size=head.size, proof=path, root=head.root_hash
            )
            proofs.append(InclusionProof(record_id, event_id, index, head.size, leaf, path, note))
        return proofs

    def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """PROOF(old_size, D[new_size]) (RFC 9162 section 2.1.4.1) with both roots.

        Raises:
            AuditIntegrityError: sizes outside 1 <= old <= new <= size of the log.
        """
        tree = self._sync()
        proof = tuple(tree.consistency_proof(old_size, new_size))
        notes = dict(self._store.checkpoints())
        return ConsistencyProof(
            old_size=old_size,
            new_size=new_size,
            old_root=tree.root(old_size),
            new_root=tree.root(new_size),
            proof=proof,
            old_checkpoint=notes.get(old_size),
            new_checkpoint=notes.get(new_size),
        )

    def verify(self, *, checkpoints: Iterable[str] = ()) -> VerifyReport:
        """Recompute the tree from the stored bytes and check every record and checkpoint.

        Streams the store (O(log n) memory), from the kept subtree hashes if the log was
        pruned. Stored checkpoints and any given ones (copies the parties kept) are checked
        for signature and origin, then their root against the recomputed root at their size
        (below the pruned size: through the kept consistency proofs). See the module
        docstring for what this detects.
        """
        findings: list[Finding] = []
        heads = _Heads()
        stored = self._store.checkpoints()
        given = [(None, note) for note in checkpoints]
        for size, note in [*stored, *given]:
            try:
                head = self._open(note)
            except AuditIntegrityError as exc:
                findings.append(Finding("signature", None, f"checkpoint does not verify: {exc}"))
                continue
            if size is not None and size != head.size:
                findings.append(
                    Finding(
                        "signature",
                        None,
                        f"checkpoint stored as of tree size {size} but signed for size "
                        f"{head.size} (the stored checkpoint row was changed)",
                    )
                )
            heads.by_size.setdefault(head.size, []).append(head)
            heads.count += 1

        try:
            prunes = self._store.prunes()
        except (AuditError, ValueError, TypeError) as exc:  # the kept hashes' rows altered
            findings.append(Finding("pruned", 0, f"kept hashes of pruned records: {exc}"))
            return VerifyReport(
                size=self._store.size(),
                root=b"",
                checkpoints_checked=heads.count,
                findings=tuple(findings),
            )
        pruned = prunes[-1] if prunes else None
        acc = CompactRange.from_frontier(pruned.size, pruned.frontier) if pruned else CompactRange()
        unchecked = _check_pruned(prunes, heads, findings)
        last_good = acc.size
        # To the last stored row, not to ``size()``: rows inserted by hand count too. Each
        # batch carries on from where the previous one stopped (``AuditStore.leaves``).
        while True:
            start = acc.size
            try:
                batch, mismatched = self._store.checked_leaves(start, start + _BATCH)
            except (AuditError, ValueError, TypeError) as exc:
                # a table or column changed so that the rows no longer read at all: the
                # store's own schema was altered, which is tampering from here on
                findings.append(
                    Finding("record", start, f"the stored records cannot be read from here: {exc}")
                )
                break
            for index in mismatched:
                findings.append(
                    Finding("record", index, "stored columns do not match the record's bytes")
                )
            for data in batch:
                acc.append(leaf_hash(data))
                for head in heads.by_size.get(acc.size, ()):
                    if acc.root() == head.root_hash:
                        last_good = max(last_good, head.size)
                    else:
                        findings.append(
                            Finding(
                                "checkpoint",
                                last_good,
                                f"root at size {head.size} does not match its checkpoint "
                                f"(records changed, removed, reordered or inserted since "
                                f"size {last_good})",
                                head.size,
                            )
                        )
            if len(batch) < _BATCH:
                break
        for missing in sorted(s for s in heads.by_size if s > acc.size):
            findings.append(
                Finding(
                    "checkpoint",
                    min(last_good, acc.size),
                    f"checkpoint at size {missing} but the log holds only {acc.size} records",
                    missing,
                )
            )
        signed = max((s for s in heads.by_size if s <= acc.size), default=0)
        return VerifyReport(
            size=acc.size,
            root=acc.root(),
            checkpoints_checked=heads.count - unchecked,
            unsigned=max(0, acc.size - max(signed, pruned.size if pruned else 0)),
            findings=tuple(_explain(findings)),
            pruned=pruned.size if pruned else 0,
            pruned_at=pruned.pruned_at if pruned else None,
            pruned_before=pruned.before if pruned else None,
            checkpoints_unchecked=unchecked,
        )

    def prune(
        self, plan: PrunePlan, *, reason: str, by: str, now: datetime | None = None
    ) -> PruneResult:
        """Carry out a prune planned by ``hub.audit.retention.plan_prune``, signed and audited.

        In order: verify the whole log (pruning would destroy the evidence of any tampering,
        so a log that does not verify is never pruned); sign a checkpoint at the current
        size; append a ``pruned`` audit record naming the range, the cut-off and that
        checkpoint; sign a checkpoint over that record; then delete the records of
        ``[plan.start, plan.end)`` and keep their compact range and the consistency proofs
        to ``plan.end`` from every stored checkpoint size below it. The record comes before
        the deletion, so a crash in between leaves an audited intent, never an unaudited
        deletion; running the prune again finishes it.

        Raises:
            AuditError: nothing to prune, or the log was pruned since the plan was made.
            AuditIntegrityError: the log does not verify.
        """
        if not plan.count:
            raise AuditError(
                f"audit prune: expected records to prune, got none ({plan.describe()})"
            )
        report = self.verify()
        if report.first is not None:
            where = "" if report.first.index is None else f" at index {report.first.index}"
            raise AuditIntegrityError(
                f"audit prune: the log does not verify ({report.first.message}{where}); "
                f"pruning would destroy the evidence, so run `hub audit verify` and "
                f"investigate first"
            )
        prunes = self._store.prunes()
        current = prunes[-1].size if prunes else 0
        if current != plan.start or self._store.size() < plan.end:
            raise AuditError(
                f"audit prune: expected the log pruned to {plan.start} as planned, got "
                f"{current}; plan again"
            )
        note_before = self.checkpoint()
        size_before = self._open(note_before).size
        now = now or datetime.now(UTC)
        event_id = f"audit-prune:{uuid.uuid4()}"
        held = f" (case {plan.held_case} is under legal hold)" if plan.held_case else ""
        record = AuditRecord(
            record_id=record_id_for(event_id, None, AuditDecision.PRUNED.value),
            time=now,
            event_id=event_id,
            decision=AuditDecision.PRUNED,
            reason=(
                f"{reason} (by {by}): records [{plan.start}, {plan.end}) written before "
                f"{plan.before.isoformat()} pruned; subtree hashes kept; checkpoint at size "
                f"{size_before} signed before pruning; prefix ended by {plan.stop}{held}"
            ),
        )
        self._store.append([record])
        note_after = self.checkpoint()
        tree = self._sync()
        sizes = {
            s for s, _ in self._store.checkpoints() if max(current, tree.pruned, 1) <= s < plan.end
        }
        if current:
            sizes.add(current)
        prefix = PrunedPrefix(
            size=plan.end,
            frontier=tree.frontier(plan.end),
            before=plan.before,
            pruned_at=now,
            proofs={s: tuple(tree.consistency_proof(s, plan.end)) for s in sorted(sizes)},
        )
        deleted = self._store.prune(prefix)
        return PruneResult(plan, deleted, record, note_before, note_after)

    def _open(self, note: str) -> Checkpoint:
        """The checkpoint a note signs, its signature and origin checked.

        The last note opened or signed here is remembered: the sink's next checkpoint opens
        the note it signed itself (the newest stored), and a note's checkpoint is a function
        of its text for a given key and origin, so it is not verified again (an Ed25519
        verification each checkpoint, issue 16).
        """
        if self._opened is not None and self._opened[0] == note:
            return self._opened[1]
        head = self._verifier.open_checkpoint(note, origin=self.origin)
        self._opened = (note, head)
        return head

    def _covering_checkpoint(self, index: int) -> tuple[str, Checkpoint]:
        for _, note in reversed(self._store.checkpoints()):
            head = self._open(note)
            if head.size > index:
                return note, head
        note = self.checkpoint()
        return note, self._open(note)

    def _sync(self) -> MerkleTree:
        """Extend the cached tree with records appended since the last call.

        A tree that has not reached the pruned size (a fresh one, or one left behind by a
        prune in another process) restarts from the kept subtree hashes.
        """
        size = self._store.size()
        if self._tree.size < size:
            prunes = self._store.prunes()
            if prunes and self._tree.size < prunes[-1].size:
                self._tree = MerkleTree.from_frontier(prunes[-1].size, prunes[-1].frontier)
        while self._tree.size < size:
            start = self._tree.size
            batch = self._store.leaves(start, min(start + _BATCH, size))
            if not batch:
                break
            self._tree.extend(leaf_hash(data) for data in batch)
        return self._tree


def _check_pruned(prunes: list[PrunedPrefix], heads: _Heads, findings: list[Finding]) -> int:
    """Check the chain of pruned prefixes and the checkpoints at or below the pruned size.

    Each prune's kept proof from the previous pruned size must lead from that root to its
    own; a checkpoint of size m <= K is checked against the first prune at or above m,
    directly when the sizes are equal, else through the proof kept from m. Appends findings
    and returns how many checkpoints had no proof (a party's copy at an unstored size).
    """
    if not prunes:
        return 0
    roots = {p.size: CompactRange.from_frontier(p.size, p.frontier).root() for p in prunes}
    previous = 0
    for prefix in prunes:
        if previous:
            try:
                proof = prefix.proofs.get(previous)
                if proof is None:
                    raise AuditIntegrityError(f"no consistency proof from size {previous}")
                verify_consistency(
                    old_size=previous,
                    new_size=prefix.size,
                    old_root=roots[previous],
                    new_root=roots[prefix.size],
                    proof=proof,
                )
            except AuditIntegrityError as exc:
                findings.append(
                    Finding("pruned", 0, f"pruned prefix {previous} -> {prefix.size}: {exc}")
                )
        previous = prefix.size
    unchecked = 0
    for size, group in heads.by_size.items():
        target = next((p for p in prunes if p.size >= size), None)
        if target is None:
            continue  # above the pruned size: the stream checks it
        for head in group:
            try:
                if size == target.size:
                    if head.root_hash != roots[size]:
                        raise AuditIntegrityError("root does not match the kept subtree hashes")
                elif size == 0:
                    if head.root_hash != CompactRange().root():
                        raise AuditIntegrityError("root of an empty tree is not the empty root")
                elif (proof := target.proofs.get(size)) is not None:
                    verify_consistency(
                        old_size=size,
                        new_size=target.size,
                        old_root=head.root_hash,
                        new_root=roots[target.size],
                        proof=proof,
                    )
                else:
                    unchecked += 1
            except AuditIntegrityError as exc:
                findings.append(
                    Finding(
                        "checkpoint",
                        0,
                        f"checkpoint at size {size}, before the pruned size {prunes[-1].size}, "
                        f"does not match the kept hashes: {exc}",
                        size,
                    )
                )
    return unchecked


def _explain(findings: list[Finding]) -> list[Finding]:
    """Order findings by index, records before checkpoints, unlocated ones last."""
    order = {"record": 0, "pruned": 1, "checkpoint": 2, "signature": 3}
    return sorted(
        findings, key=lambda f: (f.index is None, f.index or 0, order[f.kind], f.size or 0)
    )
