"""RFC 9162 Merkle tree: the reference vectors, the RFC's recursive definitions, properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from hub.errors import AuditIntegrityError

VECTORS = Path(__file__).parents[1] / "vectors" / "rfc9162"
CASES = sorted(VECTORS.rglob("*.json"))

# The leaves of the RFC 6962 / transparency-dev test tree the happy-path vectors are built on.
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def check_case(case: dict[str, Any]) -> None:
    proof = [b64(p) for p in case["proof"] or []]
    if "leafIdx" in case:
        verify_inclusion(
            leaf=b64(case["leafHash"]),
            index=case["leafIdx"],
            size=case["treeSize"],
            proof=proof,
            root=b64(case["root"]),
        )
    else:
        verify_consistency(
            old_size=case["size1"],
            new_size=case["size2"],
            old_root=b64(case["root1"]),
            new_root=b64(case["root2"]),
            proof=proof,
        )


def test_vector_suite_is_complete() -> None:
    assert len(CASES) == 196
    assert {p.relative_to(VECTORS).parts[0] for p in CASES} == {"inclusion", "consistency"}


def test_vector_copy_is_whole_and_licensed() -> None:
    """Every file listed in SHA256SUMS is there, unchanged, and nothing else; the licence too."""
    listed = {}
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    present = {str(p.relative_to(VECTORS)) for p in CASES}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (VECTORS / "LICENSE").read_text()
    assert "transparency-dev/merkle" in (VECTORS / "README.md").read_text()


@pytest.mark.parametrize("path", CASES, ids=[str(p.relative_to(VECTORS)) for p in CASES])
def test_vector(path: Path) -> None:
    case = load(path)
    if case["wantErr"]:
        with pytest.raises(AuditIntegrityError):
            check_case(case)
    else:
        check_case(case)


def test_rfc_tree_roots_and_generated_proofs_match_vectors() -> None:
    tree = MerkleTree(leaf_hash(d) for d in RFC_LEAVES)
    assert tree.root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    checked = 0
    for path in CASES:
        case = load(path)
        if case["wantErr"] or "additional" in path.parts or "single-entry" in path.parts:
            continue
        proof = [b64(p) for p in case["proof"] or []]
        if "leafIdx" in case:
            if b64(case["leafHash"]) != tree.leaf(case["leafIdx"]):
                continue
            assert tree.root(case["treeSize"]) == b64(case["root"])
            assert tree.inclusion_proof(case["leafIdx"], case["treeSize"]) == proof
        else:
            assert tree.root(case["size1"]) == b64(case["root1"])
            assert tree.root(case["size2"]) == b64(case["root2"])
            assert tree.consistency_proof(case["size1"], case["size2"]) == proof
        checked += 1
    assert checked >= 8


# --- the RFC 9162 section 2.1 definitions, written as literally as possible ---------------


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return leaf_hash(d[0])
    k = k_of(len(d))
    return node_hash(mth(d[:k]), mth(d[k:]))


def path_of(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = k_of(len(d))
    if m < k:
        return [*path_of(m, d[:k]), mth(d[k:])]
    return [*path_of(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


leaves_st = st.lists(st.binary(max_size=8), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaves_st)
def test_tree_matches_rfc_definitions(data: list[bytes]) -> None:
    tree = MerkleTree(leaf_hash(d) for d in data)
    compact = CompactRange()
    assert tree.root(0) == EMPTY_ROOT == compact.root()
    for n in range(1, len(data) + 1):
        compact.append(leaf_hash(data[n - 1]))
        assert tree.root(n) == mth(data[:n]) == compact.root()
        for m in range(n):
            assert tree.inclusion_proof(m, n) == path_of(m, data[:n])
        for m in range(1, n + 1):
            assert tree.consistency_proof(m, n) == subproof(m, data[:n], True)


@settings(max_examples=150, deadline=None)
@given(leaves_st, st.lists(st.integers(min_value=1, max_value=9), max_size=12))
def test_compact_range_extended_by_leaves_is_appended_hash_by_hash(
    data: list[bytes], cuts: list[int]
) -> None:
    """``extend_leaves`` (the checkpoint's loop) keeps the stack ``append`` keeps, in batches."""
    one_by_one = CompactRange()
    batched = CompactRange()
    start = 0
    for cut in [*cuts, len(data)]:
        batch = data[start : start + cut]
        batched.extend_leaves(batch)
        for d in batch:
            one_by_one.append(leaf_hash(d))
        start += len(batch)
        assert batched.size == one_by_one.size == start
        assert batched.frontier == one_by_one.frontier
        assert batched.root() == one_by_one.root() == mth(data[:start])


@given(st.lists(st.binary(max_size=8), max_size=40), st.integers(min_value=0, max_value=40))
def test_compact_range_extended_by_failing_leaves_holds_those_before_the_failure(
    data: list[bytes], fail_at: int
) -> None:
    """A reader failing part way leaves the range as the appends before it would have."""

    class ReaderFailedError(Exception):
        pass

    def leaves() -> Any:
        for i, d in enumerate(data):
            if i == fail_at:
                raise ReaderFailedError
            yield d

    batched = CompactRange()
    if fail_at < len(data):
        with pytest.raises(ReaderFailedError):
            batched.extend_leaves(leaves())
    else:
        batched.extend_leaves(leaves())
    held = data[:fail_at]
    assert batched.size == len(held)
    assert batched.root() == mth(held)
    batched.extend_leaves([b"next"])  # and it goes on from there
    assert batched.root() == mth([*held, b"next"])


def test_extend_equals_build() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(37)]
    grown = MerkleTree()
    for i in range(0, 37, 5):
        grown.extend(hashes[i : i + 5])
    assert grown.root() == MerkleTree(hashes).root()
    assert grown.inclusion_proof(20) == MerkleTree(hashes).inclusion_proof(20)


def flip(value: bytes, position: int) -> bytes:
    i = position % len(value)
    return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1 :]


@settings(max_examples=200, deadline=None)
@given(leaves_st, st.data())
def test_every_inclusion_proof_verifies_and_any_flip_breaks_it(
    data: list[bytes], draw: st.DataObject
) -> None:
    tree = MerkleTree(leaf_hash(d) for d in data)
    n = draw.draw(st.integers(1, len(data)), label="size")
    m = draw.draw(st.integers(0, n - 1), label="index")
    proof = tree.inclusion_proof(m, n)
    leaf, root = tree.leaf(m), tree.root(n)
    verify_inclusion(leaf=leaf, index=m, size=n, proof=proof, root=root)

    pos = draw.draw(st.integers(0, 10_000), label="byte")
    with pytest.raises(AuditIntegrityError):
        verify_inclusion(leaf=flip(leaf, pos), index=m, size=n, proof=proof, root=root)
    with pytest.raises(AuditIntegrityError):
        verify_inclusion(leaf=leaf, index=m, size=n, proof=proof, root=flip(root, pos))
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], pos), *proof[i + 1 :]]
        with pytest.raises(AuditIntegrityError):
            verify_inclusion(leaf=leaf, index=m, size=n, proof=bad, root=root)
    with pytest.raises(AuditIntegrityError):
        verify_inclusion(leaf=leaf, index=m, size=n, proof=[*proof, root], root=root)


@settings(max_examples=200, deadline=None)
@given(leaves_st, st.data())
def test_every_consistency_proof_verifies_and_any_flip_breaks_it(
    data: list[bytes], draw: st.DataObject
) -> None:
    tree = MerkleTree(leaf_hash(d) for d in data)
    new = draw.draw(st.integers(1, len(data)), label="new")
    old = draw.draw(st.integers(1, new), label="old")
    proof = tree.consistency_proof(old, new)
    r1, r2 = tree.root(old), tree.root(new)
    verify_consistency(old_size=old, new_size=new, old_root=r1, new_root=r2, proof=proof)

    pos = draw.draw(st.integers(0, 10_000), label="byte")
    with pytest.raises(AuditIntegrityError):
        verify_consistency(
            old_size=old, new_size=new, old_root=flip(r1, pos), new_root=r2, proof=proof
        )
    with pytest.raises(AuditIntegrityError):
        verify_consistency(
            old_size=old, new_size=new, old_root=r1, new_root=flip(r2, pos), proof=proof
        )
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], pos), *proof[i + 1 :]]
        with pytest.raises(AuditIntegrityError):
            verify_consistency(old_size=old, new_size=new, old_root=r1, new_root=r2, proof=bad)


def test_generation_rejects_bad_sizes() -> None:
    tree = MerkleTree(leaf_hash(bytes([i])) for i in range(4))
    for call in (
        lambda: tree.inclusion_proof(4),
        lambda: tree.inclusion_proof(0, 5),
        lambda: tree.consistency_proof(0, 4),
        lambda: tree.consistency_proof(3, 2),
        lambda: tree.root(5),
    ):
        with pytest.raises(AuditIntegrityError):
            call()


def test_million_leaves_is_practical() -> None:
    hashes = (hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(1 << 20))
    tree = MerkleTree(hashes)
    root = tree.root()
    proof = tree.inclusion_proof(123_456)
    verify_inclusion(leaf=tree.leaf(123_456), index=123_456, size=tree.size, proof=proof, root=root)
    old_root = tree.root(700_001)
    cons = tree.consistency_proof(700_001)
    verify_consistency(
        old_size=700_001, new_size=tree.size, old_root=old_root, new_root=root, proof=cons
    )
