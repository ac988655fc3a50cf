"""FileKeyStore resolves key material once per key id, and never signs with a revoked key.

``sign`` no longer stats ``keys/directory.json`` on every call: the parsed directory and the
resolved private keys are cached, the file checked at most once per ``recheck_s``. These
tests pin what that cache may never do: sign with a key once its revocation (or retirement)
is visible to the store, whoever made it. The clock is injected: no test sleeps or times.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.envelope import crypto
from hub.envelope.party import PartyEnvelope
from hub.errors import KeyRevokedError, KeyStoreError, UnknownKeyError
from hub.keys import FileKeyStore, KeyStatus
from hub.models import EventAttributes

ATTRS = EventAttributes(
    id="ev-1",
    source="/parties/hub",
    type="uk.csp.hub.rejected.v1",
    time=dt.datetime(2026, 12, 4, tzinfo=dt.UTC),
    datacontenttype="application/json",
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _revoke_in_another_process(root: Path, kid: str) -> None:
    """``hub keys revoke`` as another process runs it: a fresh interpreter, its own store."""
    code = (
        "import sys; from pathlib import Path; from hub.keys import FileKeyStore; "
        "FileKeyStore(Path(sys.argv[1])).revoke(sys.argv[2], reason='stolen laptop')"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(root), kid],
        check=True,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def test_revocation_in_the_same_store_stops_signing_at_once(tmp_path: Path, clock: Clock) -> None:
    store = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    record = store.create_party("p")
    assert store.sign(record.signing_key_id, b"before")  # resolved and cached
    store.revoke(record.signing_key_id, reason="leaver")
    with pytest.raises(KeyRevokedError, match="leaver"):
        store.sign(record.signing_key_id, b"after")


def test_revocation_by_another_store_of_this_process_stops_signing_at_once(
    tmp_path: Path, clock: Clock
) -> None:
    signer = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    record = signer.create_party("p")
    assert signer.sign(record.signing_key_id, b"before")
    # e.g. the console revoking while the router signs: the clock has not moved at all
    FileKeyStore(tmp_path / "keys").revoke(record.encryption_key_id, reason="compromised")
    with pytest.raises(KeyRevokedError):
        signer.sign(record.signing_key_id, b"after")


def test_revocation_by_another_process_stops_signing_once_visible(
    tmp_path: Path, clock: Clock
) -> None:
    signer = FileKeyStore(tmp_path / "keys", recheck_s=0.05, clock=clock)
    record = signer.create_party("p")
    assert signer.sign(record.signing_key_id, b"before")
    _revoke_in_another_process(tmp_path / "keys", record.signing_key_id)
    clock.now += 0.1  # the recheck interval passes: the next use looks at the file again
    with pytest.raises(KeyRevokedError, match="stolen laptop"):
        signer.sign(record.signing_key_id, b"after")
    assert signer.by_key_id(record.signing_key_id).status is KeyStatus.REVOKED
    # and it stays refused: the revoked key never re-enters the cache
    with pytest.raises(KeyRevokedError):
        signer.sign(record.signing_key_id, b"later")


def test_without_a_recheck_interval_another_process_is_seen_at_the_next_use(
    tmp_path: Path, clock: Clock
) -> None:
    signer = FileKeyStore(tmp_path / "keys", recheck_s=0, clock=clock)
    record = signer.create_party("p")
    assert signer.sign(record.signing_key_id, b"before")
    _revoke_in_another_process(tmp_path / "keys", record.signing_key_id)
    with pytest.raises(KeyRevokedError):
        signer.sign(record.signing_key_id, b"after")


def test_rotation_elsewhere_retires_the_cached_key(tmp_path: Path, clock: Clock) -> None:
    signer = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    record = signer.create_party("p")
    assert signer.sign(record.signing_key_id, b"before")
    new = FileKeyStore(tmp_path / "keys").rotate("p")
    with pytest.raises(KeyStoreError, match="retired"):
        signer.sign(record.signing_key_id, b"after")
    assert signer.sign(new.signing_key_id, b"after")


def test_signing_resolves_the_key_once_not_per_signature(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileKeyStore(tmp_path / "keys", recheck_s=0.05, clock=clock)
    record = store.create_party("p")
    store.sign(record.signing_key_id, b"warm")
    directory = str(tmp_path / "keys" / "directory.json")
    stats: list[str] = []
    opens: list[str] = []
    real_stat, real_open = os.stat, os.open

    def counting_stat(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> os.stat_result:
        stats.append(os.fspath(path))
        return real_stat(path, *args, **kwargs)

    def counting_open(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> int:
        opens.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    monkeypatch.setattr(os, "open", counting_open)
    for i in range(100):
        store.sign(record.signing_key_id, str(i).encode())
        store.active("p")
    assert stats.count(directory) == 0  # within the interval: no stat at all
    assert opens == []  # and no key file read
    clock.now += 1
    for i in range(100):
        store.sign(record.signing_key_id, str(i).encode())
    assert stats.count(directory) == 1  # one look per interval, not one per signature


def test_envelope_seals_to_the_new_key_after_a_rotation_and_never_to_a_revoked_one(
    tmp_path: Path, clock: Clock
) -> None:
    store = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    store.create_party("hub")
    first = store.create_party("p")
    envelope = PartyEnvelope("hub", store=store)

    def sealed_to() -> str:
        record = envelope.seal(ATTRS, key=b"C-1", plaintext=b"{}", recipient="p")
        return dict(record.headers)["ce_hubkid"].decode()

    assert sealed_to() == first.encryption_key_id
    assert sealed_to() == first.encryption_key_id  # resolved once, reused
    second = FileKeyStore(tmp_path / "keys").rotate("p")  # e.g. `hub keys rotate`
    assert sealed_to() == second.encryption_key_id
    store.revoke(second.encryption_key_id, reason="compromised")
    with pytest.raises(UnknownKeyError, match="active"):
        sealed_to()  # no active key: withheld, never sealed to the revoked one


def test_envelope_refuses_a_sender_once_its_signing_key_is_revoked(
    tmp_path: Path, clock: Clock
) -> None:
    # the opening side keeps each signing key's public key object per directory generation
    # (and each encryption key's suite): a revocation is a new generation, seen at once
    store = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    store.create_party("hub")
    sender = store.create_party("p")
    hub = PartyEnvelope("hub", store=store)
    publisher = PartyEnvelope("p", store=store)

    def opened() -> str:
        record = publisher.seal(ATTRS, key=b"C-1", plaintext=b"{}", recipient="hub")
        headers = {k: v.decode() for k, v in record.headers}
        return hub.open(headers, key=b"C-1", value=record.value, expected_signer="p").signer

    assert opened() == "p"
    sealed = publisher.seal(ATTRS, key=b"C-1", plaintext=b"{}", recipient="hub")
    assert opened() == "p"  # the cached answer
    store.revoke(sender.signing_key_id, reason="stolen laptop")
    with pytest.raises(crypto.CryptoError) as err:  # sealed before, opened after
        hub.open(
            {k: v.decode() for k, v in sealed.headers},
            key=b"C-1",
            value=sealed.value,
            expected_signer="p",
        )
    assert err.value.reason == "revoked_key"


def test_envelope_refuses_a_record_sealed_to_its_revoked_key_whatever_it_opened_before(
    tmp_path: Path, clock: Clock
) -> None:
    # the opened epoch keys are kept per (key id, wrap): a record whose wrap was opened before
    # the hub's key was revoked is refused after it, as an envelope that never opened it
    # (a restarted worker) refuses it; the answer must not depend on what the cache holds
    store = FileKeyStore(tmp_path / "keys", recheck_s=3600, clock=clock)
    hub_keys = store.create_party("hub")
    store.create_party("p")
    hub = PartyEnvelope("hub", store=store)
    publisher = PartyEnvelope("p", store=store)
    first = publisher.seal(ATTRS, key=b"C-1", plaintext=b"{}", recipient="hub")
    second = publisher.seal(ATTRS, key=b"C-2", plaintext=b"{}", recipient="hub")
    assert dict(first.headers)["ce_hubdek"] == dict(second.headers)["ce_hubdek"]  # one epoch

    def open_second(envelope: PartyEnvelope) -> str:
        headers = {k: v.decode() for k, v in second.headers}
        with pytest.raises(crypto.CryptoError) as err:
            envelope.open(headers, key=b"C-2", value=second.value, expected_signer="p")
        return err.value.reason

    headers = {k: v.decode() for k, v in first.headers}
    assert hub.open(headers, key=b"C-1", value=first.value, expected_signer="p").signer == "p"
    store.revoke(hub_keys.encryption_key_id, reason="compromised")
    assert open_second(PartyEnvelope("hub", store=store)) == "revoked_key"
    assert open_second(hub) == "revoked_key"  # not opened from the kept epoch key
