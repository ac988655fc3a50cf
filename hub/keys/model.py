"""Public key records: what every party may know about every other party's keys.

A ``PartyKeys`` record is one *generation* of a party's keys: an Ed25519 signing key and an
HPKE (RFC 9180) encryption key, created together, rotated together, revoked together. The
record holds public material only, so the directory of records can be exported to agencies
and checked into a protocol.

A generation may hold more than one encryption key, one per HPKE suite the protocol uses
(``crypto.event_types`` can put some event types on the post-quantum suite): the *primary*
key (``encryption_key_id``, ``suite``) is the protocol's default suite, the others are in
``additional_encryption_keys``. They are created, rotated and revoked with the generation.

Key ids
    Signing: ``<party>#<fingerprint>``. Encryption: ``<party>#<suite>:<fingerprint>``, so
    the id says which HPKE suite opens it (``redditch-bc#mlkem768-x25519:1f0e...``). The
    fingerprint is the first 16 hex characters (64 bits) of SHA-256 over the raw public key
    bytes (:func:`key_id`). The id is derived, not assigned, so anyone holding the public
    key can recompute and check it, and the same key always has the same id in every store
    and export. 64 bits is enough to tell a handful of keys per party apart; it is a label,
    not a security boundary (the full public key is what gets checked). The party prefix
    lets a verifier see who claims a key at a glance. (Encryption ids made before suites
    were named, ``<party>#<fingerprint>``, are still accepted for the primary key.)

Raw public key encodings
    - Ed25519: the 32-byte RFC 8032 public key.
    - X25519: the 32-byte RFC 7748 public key (HPKE ``SerializePublicKey``, RFC 9180 7.1.1).
    - ML-KEM-768 + X25519: the 1184-byte FIPS 203 encapsulation key followed by the 32-byte
      X25519 key (ML-KEM first, as X-Wing and draft-ietf-hpke-pq concatenate them).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from enum import StrEnum
from typing import TypeAlias

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from hub.errors import KeyStoreError, UnknownKeyError
from hub.models import PARTY_ID_PATTERN

__all__ = [
    "FINGERPRINT_HEX",
    "HUB_PARTY",
    "EncryptionKey",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KeyStatus",
    "KeySuite",
    "PartyKeys",
    "b64decode",
    "b64encode",
    "key_id",
]

#: the hub's own identity: publishers encrypt to it, and it signs what it delivers
HUB_PARTY = "hub"
#: hex characters of SHA-256 kept in a key id (64 bits)
FINGERPRINT_HEX = 16

HpkePublicKey: TypeAlias = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
HpkePrivateKey: TypeAlias = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey

_X25519_LEN = 32
_MLKEM768_PUBLIC_LEN = 1184


class KeySuite(StrEnum):
    """The HPKE suite of an encryption key (RFC 9180 base mode, single shot).

    Both suites use HKDF-SHA256 and AES-256-GCM; they differ only in the KEM:

    - ``x25519``: DHKEM(X25519, HKDF-SHA256), the default.
    - ``mlkem768-x25519``: the ML-KEM-768 + X25519 hybrid, for long-lived safeguarding data
      that must stay confidential if a quantum computer later breaks X25519 ("harvest now,
      decrypt later"); the hybrid is as strong as the stronger of its two halves.

    Why AES-256-GCM rather than ChaCha20-Poly1305: hub servers have AES instructions, so GCM
    is the faster of the two there and constant time; it is the AEAD NCSC and FIPS 140
    approved products expect, which matters for public-sector assurance; and a 256-bit key
    keeps a 128-bit margin against Grover's algorithm, in keeping with the post-quantum
    suite. Every HPKE library an agency might use implements it (RFC 9180 AEAD id 0x0002).
    """

    X25519 = "x25519"
    MLKEM768_X25519 = "mlkem768-x25519"

    def hpke_suite(self) -> hpke.Suite:
        """The pyca/cryptography HPKE suite for this key type."""
        kem = hpke.KEM.X25519 if self is KeySuite.X25519 else hpke.KEM.MLKEM768_X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

    def public_from_bytes(self, raw: bytes) -> HpkePublicKey:
        """Decode a raw public key of this suite (encodings in the module docstring).

        Raises:
            KeyStoreError: wrong length or not a valid key.
        """
        try:
            if self is KeySuite.X25519:
                return x25519.X25519PublicKey.from_public_bytes(raw)
            if len(raw) != _MLKEM768_PUBLIC_LEN + _X25519_LEN:
                raise ValueError(f"expected {_MLKEM768_PUBLIC_LEN + _X25519_LEN} bytes")
            return hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_LEN]),
                x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_LEN:]),
            )
        except ValueError as exc:
            raise KeyStoreError(
                f"{self.value} public key: expected a valid raw key, got {len(raw)} bytes: {exc}"
            ) from exc


class KeyStatus(StrEnum):
    """Lifecycle of a key generation.

    ``active``: the one generation used to sign and to encrypt to the party.
    ``retired``: replaced by rotation; still verifies old signatures and still decrypts
    data sealed to it before the rotation, never used for new work.
    ``revoked``: withdrawn (compromise, leaver): never used again and signatures by it are
    rejected, whenever they were made (there is no trusted signing time to tell old from new).
    """

    ACTIVE = "active"
    RETIRED = "retired"
    REVOKED = "revoked"


def b64encode(raw: bytes) -> str:
    """Standard base64 with padding (RFC 4648 section 4), as exports and headers carry it."""
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`, strict about the alphabet."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def key_id(party: str, raw_public_key: bytes, *, suite: KeySuite | None = None) -> str:
    """``<party>#<fingerprint>`` (signing) or ``<party>#<suite>:<fingerprint>`` (encryption).

    The fingerprint is the first 16 hex characters of SHA-256 over the raw public key.
    """
    fingerprint = hashlib.sha256(raw_public_key).hexdigest()[:FINGERPRINT_HEX]
    return f"{party}#{suite.value}:{fingerprint}" if suite is not None else f"{party}#{fingerprint}"


class EncryptionKey(BaseModel):
    """One HPKE public key of a generation: its id, suite and raw public key (base64)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    suite: KeySuite
    public_key: str = Field(description="HPKE raw public key, base64")

    def public(self) -> HpkePublicKey:
        """The HPKE public key object, decoded once per process (sealed to on every delivery)."""
        return _public_key(self.suite, self.public_key)


class PartyKeys(BaseModel):
    """One generation of a party's public keys and its lifecycle state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: str = Field(pattern=PARTY_ID_PATTERN)
    signing_key_id: str
    signing_public_key: str = Field(description="Ed25519 raw public key, base64")
    encryption_key_id: str
    suite: KeySuite
    encryption_public_key: str = Field(description="HPKE raw public key, base64")
    additional_encryption_keys: tuple[EncryptionKey, ...] = Field(
        default=(), description="one key per further suite the protocol uses"
    )
    created: dt.datetime
    status: KeyStatus = KeyStatus.ACTIVE
    retired_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id of the generation: signing, primary encryption, then the others."""
        return (self.signing_key_id, *(k.key_id for k in self.encryption_keys))

    @property
    def encryption_keys(self) -> tuple[EncryptionKey, ...]:
        """Every encryption key of the generation, the primary (default suite) first."""
        primary = EncryptionKey(
            key_id=self.encryption_key_id, suite=self.suite, public_key=self.encryption_public_key
        )
        return (primary, *self.additional_encryption_keys)

    @property
    def suites(self) -> tuple[KeySuite, ...]:
        """The suites this generation can be encrypted to, the primary first."""
        return tuple(k.suite for k in self.encryption_keys)

    def encryption_for(self, suite: KeySuite | str | None = None) -> EncryptionKey:
        """The encryption key of ``suite`` (the primary if None).

        Raises:
            UnknownKeyError: the generation has no key of that suite.
        """
        if suite is None:
            return self.encryption_keys[0]
        for key in self.encryption_keys:
            if key.suite == suite:
                return key
        raise UnknownKeyError(
            f"party {self.party}: expected a {KeySuite(suite).value} encryption key, found only "
            f"{', '.join(s.value for s in self.suites)}; run `hub keys init` (it rotates in "
            "keys for every suite the protocol uses)"
        )

    def encryption_key(self, kid: str) -> EncryptionKey | None:
        """The encryption key with id ``kid`` in this generation, or None."""
        return next((k for k in self.encryption_keys if k.key_id == kid), None)

    def signing_public(self) -> Ed25519PublicKey:
        """The Ed25519 public key object (whatever the status: callers check it)."""
        return Ed25519PublicKey.from_public_bytes(b64decode(self.signing_public_key))

    def encryption_public(self) -> HpkePublicKey:
        """The primary HPKE public key object for ``suite`` (whatever the status)."""
        return self.suite.public_from_bytes(b64decode(self.encryption_public_key))

    def check_ids(self) -> None:
        """Recompute every key id from its public key, so an edited record is caught.

        Raises:
            KeyStoreError: an id does not match its public key, or a suite appears twice.
        """
        signing = key_id(self.party, b64decode(self.signing_public_key))
        if self.signing_key_id != signing:
            raise KeyStoreError(
                f"key {self.signing_key_id}: expected id {signing} derived from its public key, "
                f"got {self.signing_key_id}"
            )
        for i, key in enumerate(self.encryption_keys):
            raw = b64decode(key.public_key)
            expected = key_id(self.party, raw, suite=key.suite)
            legacy = key_id(self.party, raw) if i == 0 else None  # ids made before suites
            if key.key_id not in (expected, legacy):
                raise KeyStoreError(
                    f"key {key.key_id}: expected id {expected} derived from its public key, "
                    f"got {key.key_id}"
                )
        if len(set(self.suites)) != len(self.suites):
            raise KeyStoreError(
                f"party {self.party}: expected one encryption key per suite, got "
                f"{', '.join(s.value for s in self.suites)}"
            )


@functools.lru_cache(maxsize=4096)
def _public_key(suite: KeySuite, encoded: str) -> HpkePublicKey:
    """A public key decoded from its base64 text; keys are immutable, so safe to share."""
    return suite.public_from_bytes(b64decode(encoded))
