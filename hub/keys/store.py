"""The ``KeyStore`` role: who holds private keys, and what they may be used for.

The protocol is shaped for a KMS (HashiCorp Vault Transit, AWS KMS, a cloud HSM) as much as
for the development file store: the two operations that need a private key are *methods*,
``sign(kid, data)`` and ``hpke_open(kid, ciphertext, info=...)``, so a KMS-backed store can
perform them remotely and never hand a private key to the hub process. ``hpke_private(kid)``
is a convenience for local stores (the envelope layer unwraps many epoch data keys and
caches the key object); a KMS store may raise ``KeyStoreError`` from it, and callers then
fall back to ``hpke_open``. Everything else is public material and lifecycle state.

Rules every implementation keeps (the tests in ``tests/unit/test_keys.py`` pin them):

- one ``active`` generation per party at most; ``rotate`` retires it and makes a new one;
- a ``retired`` key still verifies old signatures and still decrypts; it never signs;
- a ``revoked`` key never signs and is never encrypted to; ``verifying_key`` refuses it;
- key ids are derived from the public key (``hub.keys.model.key_id``), never assigned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.errors import KeyRevokedError, UnknownKeyError
from hub.keys.model import HUB_PARTY, HpkePrivateKey, KeyStatus, KeySuite, PartyKeys

__all__ = ["KeyDirectory", "KeyStore", "add_missing_suites", "ensure_dev_keys", "verifying_key"]


@runtime_checkable
class KeyDirectory(Protocol):
    """Read-only public key records: what a verifier or an encrypting sender needs."""

    def parties(self) -> list[str]:
        """Every party that has at least one key generation, sorted."""
        ...

    def public(self, party: str) -> list[PartyKeys]:
        """All generations of a party, newest first; empty if the party has none."""
        ...

    def active(self, party: str) -> PartyKeys:
        """The party's active generation: the only one to encrypt to or sign with.

        Raises:
            UnknownKeyError: the party has no active generation (none yet, or revoked).
        """
        ...

    def by_key_id(self, kid: str) -> PartyKeys:
        """The generation holding a signing or encryption key id, whatever its status.

        Raises:
            UnknownKeyError: no generation has this key id.
        """
        ...


@runtime_checkable
class KeyStore(KeyDirectory, Protocol):
    """Private keys and their lifecycle; see the module docstring for KMS readiness."""

    def create_party(
        self,
        party: str,
        *,
        suite: KeySuite = KeySuite.X25519,
        extra_suites: Iterable[KeySuite] = (),
    ) -> PartyKeys:
        """Create the first generation of a party's keys.

        ``suite`` is the primary encryption key's; ``extra_suites`` add one encryption key
        each (for event types the protocol puts on another suite).

        Raises:
            KeyStoreError: the party already has keys (use ``rotate``) or the id is invalid.
        """
        ...

    def rotate(
        self,
        party: str,
        *,
        suite: KeySuite | None = None,
        extra_suites: Iterable[KeySuite] | None = None,
    ) -> PartyKeys:
        """Retire the active generation (if any) and create a new active one.

        ``suite`` and ``extra_suites`` default to those of the newest generation, so rotation
        never silently downgrades a post-quantum party to X25519.

        Raises:
            UnknownKeyError: the party has never had keys (use ``create_party``).
        """
        ...

    def revoke(self, kid: str, *, reason: str) -> PartyKeys:
        """Revoke the generation holding ``kid`` (signing or encryption id); returns it.

        The party then has no active generation until ``rotate``: encrypting to it fails
        loudly rather than falling back to a key that may be compromised.

        Raises:
            UnknownKeyError: no such key id.
        """
        ...

    def sign(self, kid: str, data: bytes) -> bytes:
        """Ed25519 signature (RFC 8032) of ``data`` by an active signing key.

        A KMS store performs this remotely (Vault Transit ``sign``, AWS KMS ``Sign``).

        Raises:
            UnknownKeyError: ``kid`` is not a signing key id.
            KeyRevokedError: the key was revoked.
            KeyStoreError: the key was retired by rotation.
        """
        ...

    def hpke_open(self, kid: str, ciphertext: bytes, *, info: bytes = b"") -> bytes:
        """Open a single-shot HPKE base-mode ciphertext (``enc || ct``) sealed to ``kid``.

        Works for active, retired and revoked keys: revocation stops new use, but data
        already sealed must stay readable to its rightful holder. Whether to *accept* new
        input sealed to a revoked key is the caller's decision, from ``by_key_id(kid)``.

        Raises:
            UnknownKeyError: ``kid`` is not an encryption key id.
            KeyStoreError: the ciphertext does not open (wrong key, tampered, wrong info).
        """
        ...

    def hpke_private(self, kid: str) -> HpkePrivateKey:
        """The HPKE private key object for ``kid`` (local stores; a KMS store may refuse).

        Raises:
            UnknownKeyError: ``kid`` is not an encryption key id.
            KeyStoreError: this store never releases private keys.
        """
        ...


def verifying_key(directory: KeyDirectory, kid: str) -> tuple[PartyKeys, Ed25519PublicKey]:
    """The generation and Ed25519 public key to check a signature made by ``kid``.

    Active and retired keys verify (an event signed just before a rotation is still
    authentic); a revoked key does not. The caller must also check that the returned
    ``party`` is the party the message claims to come from.

    Raises:
        UnknownKeyError: ``kid`` is not a known key id.
        KeyRevokedError: the key was revoked.
    """
    record = directory.by_key_id(kid)
    if kid != record.signing_key_id:
        # an encryption key id offered as a signer: not a key that can sign
        raise UnknownKeyError(f"key {kid}: expected a signing key id, got an encryption key id")
    if record.status is KeyStatus.REVOKED:
        raise KeyRevokedError(
            f"signing key {kid}: revoked at {record.revoked_at} ({record.revocation_reason}); "
            "signatures by it are rejected"
        )
    return record, record.signing_public()


def ensure_dev_keys(
    store: KeyStore,
    party_ids: Iterable[str],
    *,
    suite: KeySuite = KeySuite.X25519,
    extra_suites: Iterable[KeySuite] = (),
) -> list[PartyKeys]:
    """Create keys for every listed party, and for ``hub``, that has none yet.

    ``hub up`` calls this so a development hub works out of the box. Parties that already
    have any generation (even only revoked ones) get no new first generation: a revoked
    party must be rotated on purpose, never re-keyed silently. A party whose *active*
    generation lacks a suite in ``suite``/``extra_suites`` (the protocol started using it)
    is rotated to a generation that has every suite it had plus the missing ones; the old
    generation is retired and still decrypts. Returns what it made.
    """
    extras = tuple(extra_suites)
    created: list[PartyKeys] = []
    wanted = dict.fromkeys([HUB_PARTY, *party_ids])  # ordered, deduplicated
    for party in wanted:
        if not store.public(party):
            created.append(store.create_party(party, suite=suite, extra_suites=extras))
            continue
        rotated = add_missing_suites(store, party, [suite, *extras])
        if rotated is not None:
            created.append(rotated)
    return created


def add_missing_suites(store: KeyStore, party: str, suites: Iterable[KeySuite]) -> PartyKeys | None:
    """Rotate ``party`` to a generation with every suite in ``suites``, if it lacks any.

    Returns the new generation, or None when the active one already has them all (or the
    party has no active generation: revoked parties are never re-keyed silently).
    """
    try:
        active = store.active(party)
    except UnknownKeyError:
        return None
    missing = [s for s in dict.fromkeys(suites) if s not in active.suites]
    if not missing:
        return None
    return store.rotate(party, suite=active.suite, extra_suites=[*active.suites[1:], *missing])
