"""RFC 9162 Merkle tree hashing, inclusion proofs and consistency proofs.

The audit log is a Merkle tree over the canonical bytes of each audit record, hashed exactly
as RFC 9162 section 2.1 (Certificate Transparency v2, same tree as RFC 6962) prescribes, so
anyone holding a signed checkpoint can check a proof with an implementation they did not
get from us (transparency-dev/merkle in Go, sigstore's verifier in Python, ...).

Two ways to compute roots are provided:

* ``CompactRange`` folds leaf hashes into at most log2(n) perfect-subtree hashes (a stack):
  O(log n) memory, for streaming verification of a whole store.
* ``MerkleTree`` keeps every level of aligned perfect subtrees (2n hashes, 64 bytes per leaf
  in flat ``bytearray``s: about 64 MB for a million leaves). Any subtree the RFC's recursive
  definitions need is then O(log n) lookups, so roots at any earlier size and proofs cost
  O(log^2 n) hashing after one O(n) build.

Both can start from a pruned prefix: the hashes of the perfect subtrees covering leaves
``[0, K)`` (the compact range, or left frontier: one hash per set bit of K, largest first).
Every node that a root of size >= K, an inclusion proof of a leaf >= K or a consistency
proof between sizes >= K needs is either one of those hashes or built from them and the
leaves from K on (the RFC 9162 recursion never emits a node that straddles K whole without
splitting it at K's bits), so audit retention can delete the leaves before K and keep every
later proof byte-identical (``hub.audit.retention``).

Verification raises ``AuditIntegrityError`` naming the first thing that did not match; it
follows the RFC 9162 section 2.1.3.2 and 2.1.4.2 algorithms step by step and agrees with
every case of the transparency-dev/merkle test vectors (tests/vectors/rfc9162/).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from hub.errors import AuditError, AuditIntegrityError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "check_frontier",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

#: SHA-256 output size: every leaf, node and root hash is this long
HASH_SIZE = 32
#: RFC 9162 section 2.1.1: the hash of an empty list is the hash of an empty string
EMPTY_ROOT = hashlib.sha256(b"").digest()

# RFC 9162 section 2.1.1: domain separation between leaves and interior nodes, so a leaf can
# never be passed off as a node (second-preimage attack on the tree).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def check_frontier(size: int, frontier: Sequence[bytes]) -> None:
    """Check that ``frontier`` can be the compact range of ``[0, size)``.

    Raises:
        AuditIntegrityError: not one 32-byte hash per set bit of ``size``.
    """
    if size < 0:
        raise AuditIntegrityError(f"pruned prefix: expected a size >= 0, got {size}")
    if len(frontier) != size.bit_count():
        raise AuditIntegrityError(
            f"pruned prefix of {size} leaves: expected {size.bit_count()} subtree hashes, "
            f"got {len(frontier)}"
        )
    for position, hash_ in enumerate(frontier):
        if len(hash_) != HASH_SIZE:
            raise AuditIntegrityError(
                f"pruned prefix: subtree hash {position}: expected {HASH_SIZE} bytes, "
                f"got {len(hash_)}"
            )


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1): the RFC's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """Streaming root computation: a stack of perfect-subtree hashes (RFC 9162 section 2.1.1).

    After n leaves the stack holds one hash per set bit of n, largest subtree first; the root
    of the first n leaves folds them right to left, which is exactly MTH for an incomplete
    tree because the RFC splits at the largest power of two below n.
    """

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> CompactRange:
        """Resume after ``size`` leaves whose compact range (largest subtree first) is given.

        Raises:
            AuditIntegrityError: ``frontier`` is not one hash per set bit of ``size``.
        """
        check_frontier(size, frontier)
        resumed = cls()
        resumed._size = size
        resumed._stack = list(frontier)
        return resumed

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The perfect-subtree hashes covering the leaves so far, largest first."""
        return tuple(self._stack)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, hash_: bytes) -> None:
        """Add the next leaf hash (already ``leaf_hash``ed)."""
        self._stack.append(hash_)
        self._size += 1
        # Merge equal-sized neighbours: one merge per trailing one bit of the old size.
        size = self._size
        while size & 1 == 0:
            right = self._stack.pop()
            self._stack[-1] = node_hash(self._stack[-1], right)
            size >>= 1

    def extend_leaves(self, leaves: Iterable[bytes]) -> None:
        """``append(leaf_hash(data))`` for each leaf's data, in one loop.

        The audit sink's checkpoint hashes every record once (issue 16): a call per hash and
        per merge cost as much as the hashing. The same merges, in the same order.

        If ``leaves`` raises part way (a reader failing, a value that is not bytes), the range
        holds the leaves before it, as that many ``append`` calls would have left it: the
        size is counted with each leaf, so the stack and the size never disagree.
        """
        stack = self._stack
        size = self._size
        sha256 = hashlib.sha256
        try:
            for data in leaves:
                hash_ = sha256(_LEAF_PREFIX + data).digest()
                size += 1
                merges = size
                while merges & 1 == 0:
                    hash_ = sha256(_NODE_PREFIX + stack.pop() + hash_).digest()
                    merges >>= 1
                stack.append(hash_)
        finally:
            self._size = size

    def root(self) -> bytes:
        """MTH of the leaves appended so far (``EMPTY_ROOT`` for none)."""
        if not self._stack:
            return EMPTY_ROOT
        result = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            result = node_hash(left, result)
        return result


class MerkleTree:
    """Every level of aligned perfect subtrees over a list of leaf hashes.

    ``levels[h]`` holds, concatenated, the hashes of the subtrees of 2**h leaves that start at
    a multiple of 2**h. Every left child the RFC 9162 recursion visits is such a subtree, and
    every right child is one of them or a right edge made of them, so any MTH(D[a:b]) the
    proofs need is a few lookups.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[bytearray] = [bytearray()]
        self._pruned = 0
        self.extend(leaf_hashes)

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleTree:
        """A tree whose first ``size`` leaves were pruned, keeping their compact range.

        Each frontier hash is placed where ``extend`` would have computed it; the slots of
        the pruned subtrees below them stay zero and are never read, because every method
        refuses a size or index under ``size`` (see the module docstring).

        Raises:
            AuditIntegrityError: ``frontier`` is not one hash per set bit of ``size``.
        """
        check_frontier(size, frontier)
        tree = cls()
        tree._pruned = size
        tree._levels = [bytearray(HASH_SIZE * (size >> h)) for h in range(size.bit_length())]
        if not tree._levels:
            tree._levels = [bytearray()]
        hashes = iter(frontier)
        for height in reversed(range(size.bit_length())):
            if (size >> height) & 1:
                offset = ((size >> height) - 1) * HASH_SIZE
                tree._levels[height][offset : offset + HASH_SIZE] = next(hashes)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves (pruned ones included)."""
        return len(self._levels[0]) // HASH_SIZE

    @property
    def pruned(self) -> int:
        """Leaves before this index were pruned: no size or index below it is served."""
        return self._pruned

    def frontier(self, size: int | None = None) -> tuple[bytes, ...]:
        """The compact range of ``[0, size)``: a perfect-subtree hash per set bit, largest first."""
        size = self.size if size is None else size
        if not self._pruned <= size <= self.size:
            raise AuditIntegrityError(
                f"tree size: expected {self._pruned}..{self.size}, got {size}"
            )
        hashes: list[bytes] = []
        start = 0
        for height in reversed(range(size.bit_length())):
            if (size >> height) & 1:
                hashes.append(self._perfect(height, start >> height))
                start += 1 << height
        return tuple(hashes)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaf hashes and compute the perfect subtrees they complete."""
        base = self._levels[0]
        for hash_ in leaf_hashes:
            if len(hash_) != HASH_SIZE:
                raise AuditIntegrityError(
                    f"leaf hash: expected {HASH_SIZE} bytes, got {len(hash_)}"
                )
            base += hash_
        height = 0
        while len(self._levels[height]) >= 2 * HASH_SIZE:
            below = self._levels[height]
            if height + 1 == len(self._levels):
                self._levels.append(bytearray())
            above = self._levels[height + 1]
            pairs = len(below) // (2 * HASH_SIZE)
            step = 2 * HASH_SIZE
            for i in range(len(above) // HASH_SIZE, pairs):
                above += hashlib.sha256(_NODE_PREFIX + below[i * step : (i + 1) * step]).digest()
            height += 1

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index, self.size)
        self._check_kept("leaf index", index)
        return self._perfect(0, index)

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]) (RFC 9162 section 2.1.1); the whole tree by default."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise AuditIntegrityError(f"tree size: expected 0..{self.size}, got {size}")
        if size:
            self._check_kept("tree size", size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162 section 2.1.3.1), leaf-side first."""
        size = self.size if size is None else size
        if not 0 < size <= self.size:
            raise AuditIntegrityError(f"tree size: expected 1..{self.size}, got {size}")
        self._check_index(index, size)
        self._check_kept("leaf index", index)
        proof: list[bytes] = []
        start, end, m = 0, size, index
        # The RFC's recursion appends the sibling after the deeper path: walk down, then
        # reverse, so the proof reads from the leaf up as verifiers consume it.
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m = start + k, m - k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) = SUBPROOF(m, D[n], true) (RFC 9162 section 2.1.4.1).

        Sizes must satisfy 0 < old_size <= new_size <= size; equal sizes give an empty proof.
        """
        new_size = self.size if new_size is None else new_size
        if not 0 < new_size <= self.size:
            raise AuditIntegrityError(f"new tree size: expected 1..{self.size}, got {new_size}")
        if not 0 < old_size <= new_size:
            raise AuditIntegrityError(f"old tree size: expected 1..{new_size}, got {old_size}")
        self._check_kept("old tree size", old_size)
        proof: list[bytes] = []
        start, end, m, complete = 0, new_size, old_size, True
        while True:
            n = end - start
            if m == n:
                if not complete:
                    proof.append(self._subtree(start, end))
                break
            k = _split(n)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        proof.reverse()
        return proof

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range the RFC recursion can visit."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._perfect(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _perfect(self, height: int, position: int) -> bytes:
        offset = position * HASH_SIZE
        return bytes(self._levels[height][offset : offset + HASH_SIZE])

    def _check_kept(self, what: str, value: int) -> None:
        """Refuse a size or index whose answer needs the hashes of pruned leaves."""
        if value < self._pruned:
            raise AuditError(
                f"{what}: expected at least {self._pruned} (leaves before it were pruned under "
                f"audit retention), got {value}"
            )

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise AuditIntegrityError(f"leaf index: expected 0..{size - 1}, got {index}")


def root_from_inclusion_proof(
    *, leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2, steps 1-4).

    Raises:
        AuditIntegrityError: the index is outside the tree, a hash has the wrong length, or
            the proof has the wrong number of nodes for this index and size.
    """
    # Step 1: the leaf must be inside the tree (this also rejects every empty tree).
    if not 0 <= index < size:
        raise AuditIntegrityError(f"inclusion proof: leaf index {index} outside tree size {size}")
    _check_hashes(leaf, proof, what="inclusion proof")
    # Step 2-3.
    fn, sn, r = index, size - 1, leaf
    # Step 4.
    for p in proof:
        if sn == 0:  # 4a: more nodes than the path from this leaf to the root
            raise AuditIntegrityError(
                f"inclusion proof: expected fewer than {len(proof)} hashes for leaf {index} "
                f"of {size}"
            )
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # Step 5, first half: the path must reach the root exactly.
    if sn != 0:
        raise AuditIntegrityError(
            f"inclusion proof: expected more than {len(proof)} hashes for leaf {index} of {size}"
        )
    return r


def verify_inclusion(
    *, leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` with ``root``.

    RFC 9162 section 2.1.3.2.

    Raises:
        AuditIntegrityError: the proof does not verify (the message says why).
    """
    computed = root_from_inclusion_proof(leaf=leaf, index=index, size=size, proof=proof)
    if computed != root:  # Step 5, second half.
        raise AuditIntegrityError(
            f"inclusion proof: expected root {root.hex()}, proof leads to {computed.hex()}"
        )


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size`` (append-only).

    RFC 9162 section 2.1.4.2 defines verification for 0 < first < second; equal sizes are
    consistent only with an empty proof and equal roots, and a size-0 tree is refused (a
    checkpoint of nothing commits to nothing, and the reference vectors reject it).

    Raises:
        AuditIntegrityError: the proof does not verify (the message says why).
    """
    if old_size < 1:
        raise AuditIntegrityError(f"consistency proof: expected old size >= 1, got {old_size}")
    if new_size < old_size:
        raise AuditIntegrityError(
            f"consistency proof: expected new size >= old size {old_size}, got {new_size}"
        )
    if old_size == new_size:
        if proof:
            raise AuditIntegrityError(
                f"consistency proof: expected no hashes for equal sizes, got {len(proof)}"
            )
        if old_root != new_root:
            raise AuditIntegrityError("consistency proof: equal sizes but different roots")
        return
    # Step 1.
    if not proof:
        raise AuditIntegrityError("consistency proof: expected at least one hash, got none")
    _check_hashes(old_root, proof, what="consistency proof")
    if len(new_root) != HASH_SIZE:
        raise AuditIntegrityError(
            f"consistency proof: expected a {HASH_SIZE}-byte new root, got {len(new_root)}"
        )
    path = list(proof)
    # Step 2: a perfect old tree is itself a node of the new one, so the proof omits it.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5-6.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # 6a
            raise AuditIntegrityError(
                f"consistency proof: expected fewer than {len(proof)} hashes for "
                f"{old_size} -> {new_size}"
            )
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise AuditIntegrityError(
            f"consistency proof: expected more than {len(proof)} hashes for "
            f"{old_size} -> {new_size}"
        )
    if fr != old_root:
        raise AuditIntegrityError(
            f"consistency proof: expected old root {old_root.hex()}, proof leads to {fr.hex()}"
        )
    if sr != new_root:
        raise AuditIntegrityError(
            f"consistency proof: expected new root {new_root.hex()}, proof leads to {sr.hex()}"
        )


def _check_hashes(first: bytes, proof: Sequence[bytes], *, what: str) -> None:
    """Every hash in a proof is a SHA-256 output: reject truncated or padded nodes early."""
    for position, value in enumerate([first, *proof]):
        if len(value) != HASH_SIZE:
            name = "leaf or root" if position == 0 else f"hash {position - 1}"
            raise AuditIntegrityError(
                f"{what}: {name}: expected {HASH_SIZE} bytes, got {len(value)}"
            )
