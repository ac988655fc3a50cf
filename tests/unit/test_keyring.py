"""The case keyring: one SQLite file for every case key, shredding by destroying one key.

What shredding must leave on disk (``hub.keys.cases`` says what it does and does not
guarantee): the key's bytes in no file of the keyring, the log included, while every other
case's key still reads back. And the per-case files of the older layout move into the
keyring when it is opened, tombstones winning, so an upgrade loses no key and revives no
shredded case.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from hub.errors import CaseShreddedError
from hub.keys.cases import CASE_KEY_BYTES, CaseKeys


def pseudonym(ref: str) -> str:
    return "pc_" + hashlib.sha256(ref.encode()).hexdigest()[:32]


def keyring_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((root / "cases").iterdir()) if p.is_file())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "keys"


def test_shredded_keys_are_in_no_keyring_file_and_the_rest_read_back(root: Path) -> None:
    cases = CaseKeys(root, pseudonymise=pseudonym)
    keys = {f"C-{i}": cases.key_for(f"C-{i}") for i in range(400)}  # pages split and move
    doomed = [f"C-{i}" for i in range(0, 400, 7)]
    for ref in doomed:
        assert cases.shred(ref) is True
    everything = keyring_bytes(root)
    assert not [ref for ref in doomed if keys[ref] in everything]
    other = CaseKeys(root, pseudonymise=pseudonym)  # e.g. the running hub, opened after
    for ref, key in keys.items():
        if ref in doomed:
            with pytest.raises(CaseShreddedError):
                other.key_for(ref)
        else:
            assert other.key_for(ref) == key
    assert other.live_cases() == sorted(pseudonym(r) for r in keys if r not in doomed)


def test_a_shred_elsewhere_is_seen_by_an_open_keyring_at_once(root: Path) -> None:
    router = CaseKeys(root, pseudonymise=pseudonym)
    key = router.key_for("C-1")
    assert CaseKeys(root, pseudonymise=pseudonym).key_for("C-1") == key  # one key per case
    assert CaseKeys(root, pseudonymise=pseudonym).shred("C-1") is True  # `hub keys shred`
    assert router.is_shredded("C-1")
    with pytest.raises(CaseShreddedError):
        router.key_for("C-1")


def _legacy(root: Path, name: str, suffix: str, body: bytes) -> Path:
    cases_dir = root / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = cases_dir / f"{name}{suffix}"
    path.write_bytes(body)
    path.chmod(0o600)
    return path


def test_per_case_files_move_into_the_keyring_on_open(root: Path) -> None:
    live = os.urandom(CASE_KEY_BYTES)
    doomed = os.urandom(CASE_KEY_BYTES)
    half_made = os.urandom(CASE_KEY_BYTES)
    _legacy(root, pseudonym("LIVE-1"), ".key", live)
    # shredded, but the crash came before its key file was destroyed: the tombstone wins
    _legacy(root, pseudonym("GONE-1"), ".key", doomed)
    stamp = {"case": pseudonym("GONE-1"), "shredded_at": "2026-01-02T03:04:05+00:00"}
    _legacy(root, pseudonym("GONE-1"), ".shredded", json.dumps(stamp).encode())
    _legacy(root, pseudonym("GONE-2"), ".shredded", b"{}")  # shredded before it had a key
    # a key being created when the process died (its event never acknowledged)
    _legacy(root, f".{pseudonym('HALF-1')}", ".key.tmp", half_made)

    cases = CaseKeys(root, pseudonymise=pseudonym)
    assert cases.key_for("LIVE-1") == live
    for ref in ("GONE-1", "GONE-2"):
        assert cases.is_shredded(ref)
        with pytest.raises(CaseShreddedError):
            cases.key_for(ref)
    assert cases.live_cases() == [pseudonym("LIVE-1")]
    names = sorted(p.name for p in (root / "cases").iterdir())
    assert [n for n in names if n.endswith((".key", ".shredded", ".tmp"))] == []
    everything = keyring_bytes(root)
    assert doomed not in everything
    assert half_made not in everything


def test_migration_finishes_after_a_crash_between_commit_and_cleanup(root: Path) -> None:
    cases = CaseKeys(root, pseudonymise=pseudonym)
    key = cases.key_for("C-1")
    cases.close()
    # as if the previous open committed C-1 and died before destroying its old file
    _legacy(root, pseudonym("C-1"), ".key", key)
    again = CaseKeys(root, pseudonymise=pseudonym)
    assert again.key_for("C-1") == key
    assert not (root / "cases" / f"{pseudonym('C-1')}.key").exists()
