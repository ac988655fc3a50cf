"""Party keys, the file key store and case keys: lifecycle, file modes, shredding, holds."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from hub.errors import (
    CaseShreddedError,
    KeyRevokedError,
    KeyStoreError,
    LegalHoldError,
    UnknownKeyError,
)
from hub.keys import (
    HUB_PARTY,
    CaseKeys,
    FileKeyStore,
    KeyDirectory,
    KeyStatus,
    KeyStore,
    KeySuite,
    PartyKeys,
    ensure_dev_keys,
    key_id,
    verifying_key,
)
from hub.keys.model import b64decode


@pytest.fixture
def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "keys")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_store_satisfies_protocols(store: FileKeyStore) -> None:
    assert isinstance(store, KeyStore)
    assert isinstance(store, KeyDirectory)


@pytest.mark.parametrize("suite", list(KeySuite))
def test_create_party_each_suite_round_trips_hpke(store: FileKeyStore, suite: KeySuite) -> None:
    record = store.create_party("west-mercia-police", suite=suite)
    assert record.status is KeyStatus.ACTIVE
    assert record.suite is suite
    assert store.active("west-mercia-police") == record
    sealed = suite.hpke_suite().encrypt(b"payload", record.encryption_public(), b"ctx")
    assert store.hpke_open(record.encryption_key_id, sealed, info=b"ctx") == b"payload"
    assert suite.hpke_suite().decrypt(sealed, store.hpke_private(record.encryption_key_id), b"ctx")
    with pytest.raises(KeyStoreError, match="does not open"):
        store.hpke_open(record.encryption_key_id, sealed, info=b"other")


def test_hybrid_public_key_is_mlkem_then_x25519(store: FileKeyStore) -> None:
    record = store.create_party("p", suite=KeySuite.MLKEM768_X25519)
    assert len(b64decode(record.encryption_public_key)) == 1184 + 32


def test_key_ids_derive_from_public_key(store: FileKeyStore) -> None:
    record = store.create_party("redditch-bc")
    raw = b64decode(record.signing_public_key)
    assert record.signing_key_id == "redditch-bc#" + hashlib.sha256(raw).hexdigest()[:16]
    assert record.signing_key_id == key_id("redditch-bc", raw)
    enc_raw = b64decode(record.encryption_public_key)
    assert record.encryption_key_id == key_id("redditch-bc", enc_raw, suite=KeySuite.X25519)
    assert record.encryption_key_id == (
        "redditch-bc#x25519:" + hashlib.sha256(enc_raw).hexdigest()[:16]
    )
    record.check_ids()
    forged = record.model_copy(update={"signing_key_id": "redditch-bc#0000000000000000"})
    with pytest.raises(KeyStoreError, match="derived from its public key"):
        forged.check_ids()


def test_file_modes(store: FileKeyStore) -> None:
    store.create_party("p")
    root = store.root
    assert mode(root) == 0o700
    assert mode(root / "private") == 0o700
    assert mode(root / "directory.json") == 0o600
    keys = list((root / "private").iterdir())
    assert len(keys) == 2
    assert all(mode(k) == 0o600 for k in keys)
    assert not [p for p in root.rglob(".*-*")]  # no temporary files left behind


def test_existing_open_directory_is_tightened(tmp_path: Path) -> None:
    root = tmp_path / "keys"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    FileKeyStore(root).create_party("p")
    assert mode(root) == 0o700


def test_sign_and_verify(store: FileKeyStore) -> None:
    record = store.create_party("p")
    signature = store.sign(record.signing_key_id, b"canonical bytes")
    party, public = verifying_key(store, record.signing_key_id)
    assert party.party == "p"
    public.verify(signature, b"canonical bytes")
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"tampered bytes")


def test_key_roles_are_not_interchangeable(store: FileKeyStore) -> None:
    record = store.create_party("p")
    with pytest.raises(UnknownKeyError, match="signing key id"):
        store.sign(record.encryption_key_id, b"x")
    with pytest.raises(UnknownKeyError, match="signing key id"):
        verifying_key(store, record.encryption_key_id)
    with pytest.raises(UnknownKeyError, match="encryption key id"):
        store.hpke_private(record.signing_key_id)


def test_create_party_twice_or_bad_id_is_refused(store: FileKeyStore) -> None:
    store.create_party("p")
    with pytest.raises(KeyStoreError, match="rotate"):
        store.create_party("p")
    with pytest.raises(KeyStoreError, match="party id"):
        store.create_party("Bad Party")


def test_rotation_retires_old_which_still_decrypts_and_verifies(store: FileKeyStore) -> None:
    old = store.create_party("p", suite=KeySuite.MLKEM768_X25519)
    sealed = old.suite.hpke_suite().encrypt(b"before", old.encryption_public(), b"")
    signature = store.sign(old.signing_key_id, b"before")

    new = store.rotate("p")
    assert new.suite is KeySuite.MLKEM768_X25519  # rotation keeps the suite
    assert store.active("p") == new
    history = store.public("p")
    assert [r.signing_key_id for r in history] == [new.signing_key_id, old.signing_key_id]
    retired = store.by_key_id(old.encryption_key_id)
    assert retired.status is KeyStatus.RETIRED
    assert retired.retired_at is not None
    assert store.hpke_open(old.encryption_key_id, sealed) == b"before"
    verifying_key(store, old.signing_key_id)[1].verify(signature, b"before")
    with pytest.raises(KeyStoreError, match="retired"):
        store.sign(old.signing_key_id, b"after")


def test_rotate_can_change_suite_and_unknown_party_fails(store: FileKeyStore) -> None:
    store.create_party("p")
    assert store.rotate("p", suite=KeySuite.MLKEM768_X25519).suite is KeySuite.MLKEM768_X25519
    with pytest.raises(UnknownKeyError, match="init"):
        store.rotate("nobody")


def test_revocation(store: FileKeyStore) -> None:
    record = store.create_party("p")
    signature = store.sign(record.signing_key_id, b"data")
    sealed = record.suite.hpke_suite().encrypt(b"old", record.encryption_public(), b"")

    revoked = store.revoke(record.encryption_key_id, reason="laptop stolen")
    assert revoked.status is KeyStatus.REVOKED
    assert revoked.revocation_reason == "laptop stolen"
    assert revoked.revoked_at is not None
    with pytest.raises(KeyRevokedError, match="laptop stolen"):
        verifying_key(store, record.signing_key_id)
    with pytest.raises(KeyRevokedError):
        store.sign(record.signing_key_id, b"data")
    with pytest.raises(UnknownKeyError, match="rotate"):
        store.active("p")  # nothing to encrypt to until a rotation
    assert store.hpke_open(record.encryption_key_id, sealed) == b"old"  # data at rest stays
    assert signature  # made before revocation, but rejected all the same (no trusted time)

    again = store.revoke(record.signing_key_id, reason="second time")
    assert again.revocation_reason == "laptop stolen"  # idempotent
    fresh = store.rotate("p")
    assert store.active("p") == fresh
    assert store.by_key_id(record.signing_key_id).status is KeyStatus.REVOKED


def test_revoke_needs_reason_and_known_key(store: FileKeyStore) -> None:
    record = store.create_party("p")
    with pytest.raises(KeyStoreError, match="reason"):
        store.revoke(record.signing_key_id, reason=" ")
    with pytest.raises(UnknownKeyError):
        store.revoke("p#0000000000000000", reason="x")
    with pytest.raises(UnknownKeyError):
        store.by_key_id("p#0000000000000000")


def test_persistence_across_instances(tmp_path: Path) -> None:
    first = FileKeyStore(tmp_path / "keys")
    record = first.create_party("p", suite=KeySuite.MLKEM768_X25519)
    signature = first.sign(record.signing_key_id, b"m")
    sealed = record.suite.hpke_suite().encrypt(b"s", record.encryption_public(), b"")

    second = FileKeyStore(tmp_path / "keys")
    assert second.public("p") == [record]
    assert second.parties() == ["p"]
    assert second.sign(record.signing_key_id, b"m") == signature  # Ed25519 is deterministic
    assert second.hpke_open(record.encryption_key_id, sealed) == b"s"

    # a change made by another instance (another process) is seen without a restart
    second.revoke(record.signing_key_id, reason="r")
    assert first.by_key_id(record.signing_key_id).status is KeyStatus.REVOKED


def test_corrupt_directory_is_a_key_store_error(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    store.create_party("p")
    path = tmp_path / "keys" / "directory.json"
    path.write_text("{not json")
    with pytest.raises(KeyStoreError, match="unreadable"):
        FileKeyStore(tmp_path / "keys").parties()


def test_missing_private_key_file(store: FileKeyStore) -> None:
    record = store.create_party("p")
    for path in (store.root / "private").iterdir():
        path.unlink()
    with pytest.raises(UnknownKeyError, match="missing"):
        store.sign(record.signing_key_id, b"x")


def test_ensure_dev_keys_creates_missing_only(store: FileKeyStore) -> None:
    existing = store.create_party("a")
    created = ensure_dev_keys(store, ["a", "b", "b"], suite=KeySuite.X25519)
    assert sorted(r.party for r in created) == ["b", HUB_PARTY]
    assert store.active("a") == existing
    assert ensure_dev_keys(store, ["a", "b"]) == []
    assert store.parties() == ["a", "b", HUB_PARTY]


def test_generation_with_two_suites_opens_each_with_its_own_key(store: FileKeyStore) -> None:
    record = store.create_party(
        "p", suite=KeySuite.X25519, extra_suites=[KeySuite.MLKEM768_X25519, KeySuite.X25519]
    )
    assert record.suites == (KeySuite.X25519, KeySuite.MLKEM768_X25519)
    pq = record.encryption_for("mlkem768-x25519")
    assert pq.key_id.startswith("p#mlkem768-x25519:")
    assert record.encryption_for(None).key_id == record.encryption_key_id
    assert set(record.key_ids) == {record.signing_key_id, record.encryption_key_id, pq.key_id}
    for key in record.encryption_keys:
        sealed = key.suite.hpke_suite().encrypt(b"m", key.public(), b"i")
        assert store.hpke_open(key.key_id, sealed, info=b"i") == b"m"
        assert store.by_key_id(key.key_id) == record
    wrong = record.encryption_keys[0]
    sealed_pq = pq.suite.hpke_suite().encrypt(b"m", pq.public(), b"i")
    with pytest.raises(KeyStoreError):
        store.hpke_open(wrong.key_id, sealed_pq, info=b"i")
    rotated = store.rotate("p")
    assert rotated.suites == record.suites  # rotation keeps every suite
    record.check_ids()
    forged = record.model_copy(
        update={"additional_encryption_keys": (pq.model_copy(update={"key_id": "p#x"}),)}
    )
    with pytest.raises(KeyStoreError, match="derived from its public key"):
        forged.check_ids()


def test_missing_suite_is_refused_then_added_by_ensure_dev_keys(store: FileKeyStore) -> None:
    old = store.create_party("a")
    with pytest.raises(UnknownKeyError, match="mlkem768-x25519"):
        old.encryption_for(KeySuite.MLKEM768_X25519)
    made = ensure_dev_keys(store, ["a"], extra_suites=[KeySuite.MLKEM768_X25519])
    assert {r.party for r in made} == {"a", HUB_PARTY}
    new = store.active("a")
    assert new.suites == (KeySuite.X25519, KeySuite.MLKEM768_X25519)
    assert store.by_key_id(old.encryption_key_id).status is KeyStatus.RETIRED
    assert ensure_dev_keys(store, ["a"], extra_suites=[KeySuite.MLKEM768_X25519]) == []


def test_v1_directory_with_unqualified_ids_still_loads(store: FileKeyStore) -> None:
    record = store.create_party("p")
    raw = b64decode(record.encryption_public_key)
    legacy = record.model_copy(update={"encryption_key_id": key_id("p", raw)})
    legacy.check_ids()  # the id scheme before suites were named is still accepted
    body = {"format": "hub.keys.directory.v1", "keys": [legacy.model_dump(mode="json")]}
    (store.root / "directory.json").write_text(json.dumps(body))
    assert FileKeyStore(store.root).active("p").encryption_key_id == key_id("p", raw)


def test_directory_json_is_public_only(store: FileKeyStore) -> None:
    store.create_party("p")
    body = json.loads((store.root / "directory.json").read_text())
    assert body["format"] == "hub.keys.directory.v2"
    assert all("private" not in name for name in body["keys"][0])
    assert PartyKeys.model_validate(body["keys"][0]).party == "p"


# -- case keys -------------------------------------------------------------------------


def pseudonym(ref: str) -> str:
    return "pc_" + hashlib.sha256(ref.encode()).hexdigest()[:32]


def keyring_bytes(tmp_path: Path) -> bytes:
    """Every byte of every keyring file (database, write-ahead log, its index)."""
    return b"".join(p.read_bytes() for p in sorted((tmp_path / "keys" / "cases").iterdir()))


@pytest.fixture
def cases(tmp_path: Path) -> CaseKeys:
    return CaseKeys(tmp_path / "keys", pseudonymise=pseudonym)


def test_case_key_created_once_and_stable(cases: CaseKeys, tmp_path: Path) -> None:
    key = cases.key_for("MARAC-2025-0042")
    assert len(key) == 32
    assert cases.key_for("MARAC-2025-0042") == key
    assert CaseKeys(tmp_path / "keys", pseudonymise=pseudonym).key_for("MARAC-2025-0042") == key
    assert cases.key_for("MARAC-2025-0043") != key
    files = list((tmp_path / "keys" / "cases").iterdir())
    assert not [f for f in files if "MARAC" in f.name]  # never the case ref in a file name
    assert b"MARAC" not in keyring_bytes(tmp_path)  # nor in the keyring: pseudonyms only
    assert key in keyring_bytes(tmp_path)  # it holds the key itself
    keyring = tmp_path / "keys" / "cases" / "keyring.sqlite3"
    assert {f.name for f in files if not f.name.startswith(".")} <= {
        keyring.name,
        f"{keyring.name}-wal",
        f"{keyring.name}-shm",
    }  # one keyring, not a file per case
    for path in files:
        assert mode(path) == 0o600
    assert mode(keyring.parent) == 0o700


def test_shred_destroys_key_and_stays_shredded(cases: CaseKeys, tmp_path: Path) -> None:
    cases.key_for("C1")
    other = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym)  # e.g. the running hub
    other.key_for("C1")
    key = cases.key_for("C1")
    assert key in keyring_bytes(tmp_path)
    assert cases.shred("C1") is True
    assert key not in keyring_bytes(tmp_path)  # in no file of the keyring, log included
    assert cases.is_shredded("C1")
    with pytest.raises(CaseShreddedError):
        cases.key_for("C1")
    with pytest.raises(CaseShreddedError):
        other.key_for("C1")  # its cached key is not used after a shred elsewhere
    assert cases.shred("C1") is False  # nothing left to destroy
    with pytest.raises(CaseShreddedError):
        cases.add_hold("C1", "too late", "ig-officer")


def test_shred_of_unknown_case_still_tombstones(cases: CaseKeys) -> None:
    assert cases.shred("never-used") is False
    with pytest.raises(CaseShreddedError):
        cases.key_for("never-used")


def test_legal_hold_blocks_shred_until_lifted(cases: CaseKeys) -> None:
    key = cases.key_for("DHR-1")
    hold = cases.add_hold("DHR-1", "Domestic Homicide Review", "csp-manager")
    assert hold.case == pseudonym("DHR-1")
    assert cases.holds() == [hold]
    with pytest.raises(LegalHoldError, match="hub holds lift"):
        cases.shred("DHR-1")
    assert cases.key_for("DHR-1") == key
    with pytest.raises(LegalHoldError, match="already"):
        cases.add_hold("DHR-1", "again", "someone")

    lifted = cases.lift_hold("DHR-1", "csp-manager")
    assert lifted == hold
    assert cases.holds() == []
    with pytest.raises(LegalHoldError, match="found none"):
        cases.lift_hold("DHR-1", "csp-manager")
    assert cases.shred("DHR-1") is True


def test_hold_needs_reason_and_author(cases: CaseKeys) -> None:
    with pytest.raises(LegalHoldError):
        cases.add_hold("C", " ", "me")
    with pytest.raises(LegalHoldError):
        cases.lift_hold("C", "")


def test_unsafe_pseudonym_is_refused(tmp_path: Path) -> None:
    cases = CaseKeys(tmp_path, pseudonymise=lambda ref: ref)
    with pytest.raises(KeyStoreError, match="pseudonym"):
        cases.key_for("../../etc/passwd")
