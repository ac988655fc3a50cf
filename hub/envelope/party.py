"""Seal and open as a party, with keys from a ``KeyStore``: the glue the SDK and router use.

Keeps the hot path cheap: epoch data keys are reused per recipient key (``DataKeyCache``),
and on the opening side an unwrapped epoch key is remembered per (key id, data key id), so
a stream from one sender costs one HPKE open per epoch, not per message.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.envelope import crypto
from hub.envelope.sealing import OpenedRecord, SealedRecord, open_record, seal_record
from hub.errors import KeyRevokedError, KeyStoreError, UnknownKeyError
from hub.keys.model import KeyStatus, PartyKeys
from hub.keys.store import KeyStore
from hub.models import EventAttributes

__all__ = ["PartyEnvelope"]

_OPENED_CACHE = 4096


class _StoreSigner:
    def __init__(self, store: KeyStore, kid: str) -> None:
        self._store = store
        self.kid = kid

    def sign(self, data: bytes) -> bytes:
        return self._store.sign(self.kid, data)


class _StoreDirectory:
    def __init__(self, store: KeyStore) -> None:
        self._store = store
        # kid -> (the record it was resolved from, the answer): the public key object is
        # built once per directory generation, not per verified event. The store hands back
        # the same (frozen) record until its directory changes, so a revocation or rotation
        # is a new record and a new answer. Only the store's own key ids are kept.
        self._keys: dict[str, tuple[PartyKeys, tuple[str, Ed25519PublicKey, bool]]] = {}

    def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
        try:
            record = self._store.by_key_id(kid)
        except UnknownKeyError:
            raise KeyError(kid) from None
        cached = self._keys.get(kid)
        if cached is not None and cached[0] is record:
            return cached[1]
        if kid != record.signing_key_id:
            raise KeyError(kid)
        found = (record.party, record.signing_public(), record.status is KeyStatus.REVOKED)
        self._keys[kid] = (record, found)
        return found


class PartyEnvelope:
    """One party's view of the envelope: seal to others, open what is sealed to it."""

    def __init__(
        self, party: str, *, store: KeyStore, cache: crypto.DataKeyCache | None = None
    ) -> None:
        self.party = party
        self.store = store
        self.cache = cache or crypto.DataKeyCache()
        self._directory = _StoreDirectory(store)
        self._opened: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()
        # (recipient, suite) -> (the active record it was resolved from, what seal needs)
        self._targets: dict[tuple[str, str | None], tuple[PartyKeys, tuple[str, str, Any]]] = {}
        self._own: _StoreSigner | None = None
        # encryption key id -> (the record it was read from, its suite or None): ``_suite_of``
        self._suites: dict[str, tuple[PartyKeys, str | None]] = {}

    def seal(
        self,
        attrs: EventAttributes,
        *,
        key: bytes | None,
        plaintext: bytes,
        recipient: str,
        extensions: Mapping[str, str] | None = None,
        escrow: Callable[[bytes, str], str | None] | None = None,
        suite: str | None = None,
    ) -> SealedRecord:
        """Encrypt to ``recipient``'s active key of ``suite`` and sign with this party's key.

        ``suite`` is the protocol's choice for the event type (``CryptoPolicy.suite_for``);
        None means the recipient's primary key. The ``ce_hubsuite`` and ``ce_hubkid`` headers
        say which was used, so the recipient knows which private key opens it.

        Raises:
            KeyStoreError: either party has no active key (run ``hub keys init``/``rotate``),
                or the recipient has no key of ``suite`` (``UnknownKeyError``).
        """
        kid, suite_name, public = self._target(recipient, suite)
        return seal_record(
            attrs,
            key=key,
            plaintext=plaintext,
            recipient=recipient,
            recipient_kid=kid,
            suite=suite_name,
            recipient_public=public,
            cache=self.cache,
            signer=self._signer(),
            extensions=extensions,
            escrow=escrow,
        )

    def _target(self, recipient: str, suite: str | None) -> tuple[str, str, Any]:
        """(key id, suite, public key object) of the recipient's active key of ``suite``.

        Resolved once per active generation: the store hands back the same record object
        until its directory changes (a rotation or revocation), and a new record means a
        new lookup, so a revoked key is never sealed to once the store has seen it.
        """
        record = self.store.active(recipient)
        cached = self._targets.get((recipient, suite))
        if cached is not None and cached[0] is record:
            return cached[1]
        target = record.encryption_for(suite)
        resolved = (target.key_id, target.suite.value, target.public())
        self._targets[(recipient, suite)] = (record, resolved)
        return resolved

    def _signer(self) -> _StoreSigner:
        """The active signing key of this party (the store refuses it once revoked or retired)."""
        record = self.store.active(self.party)
        if self._own is None or self._own.kid != record.signing_key_id:
            self._own = _StoreSigner(self.store, record.signing_key_id)
        return self._own

    def open(
        self, headers: Mapping[str, str], *, key: bytes | None, value: bytes, expected_signer: str
    ) -> OpenedRecord:
        """Verify that ``expected_signer`` signed it, and decrypt it with this party's keys.

        The ``ce_hubsuite`` header must name the suite of the ``ce_hubkid`` key (both are
        signed; a mismatch is a malformed envelope, reason ``bad_envelope``).
        """
        kid, suite = headers.get("ce_hubkid"), headers.get("ce_hubsuite")
        if kid is not None and suite is not None:
            expected = self._suite_of(kid)
            if expected is not None and expected != suite:
                raise crypto.CryptoError(
                    f"ce_hubsuite: expected {expected} for key {kid}, got {suite!r}",
                    "bad_envelope",
                )
        return open_record(
            headers,
            key=key,
            value=value,
            recipient=self.party,
            directory=self._directory,
            hpke_open=self._hpke_open,
            expected_signer=expected_signer,
        )

    def _suite_of(self, kid: str) -> str | None:
        """The suite of encryption key ``kid``; None if the store has no such key.

        Kept per key id with the record it was read from (as ``_target``): a record lists its
        encryption keys as new models on every call.
        """
        try:
            record = self.store.by_key_id(kid)
        except UnknownKeyError:
            return None  # open_record reports it (not_for_recipient)
        cached = self._suites.get(kid)
        if cached is not None and cached[0] is record:
            return cached[1]
        enc = record.encryption_key(kid)
        suite = enc.suite.value if enc is not None else None
        self._suites[kid] = (record, suite)
        return suite

    def _hpke_open(self, kid: str, ciphertext: bytes, info: bytes) -> bytes:
        # the key is checked before the kept epoch keys are asked: a wrap opened before the
        # key's revocation is refused after it, as an envelope that never opened it refuses it
        # (``_suite_of``: is ``kid`` an encryption key, without building its model per record)
        try:
            record = self.store.by_key_id(kid)
        except UnknownKeyError:
            raise KeyError(kid) from None
        if record.party != self.party or self._suite_of(kid) is None:
            raise KeyError(kid)
        if record.status is KeyStatus.REVOKED:
            raise crypto.CryptoError(f"sealed to revoked key {kid}", "revoked_key")
        slot = (kid, hashlib.sha256(info).hexdigest(), hashlib.sha256(ciphertext).hexdigest())
        with self._lock:
            if slot in self._opened:
                self._opened.move_to_end(slot)
                return self._opened[slot]
        try:
            key = self.store.hpke_open(kid, ciphertext, info=info)
        except (KeyStoreError, KeyRevokedError) as exc:
            raise crypto.CryptoError(str(exc), "bad_ciphertext") from exc
        with self._lock:
            self._opened[slot] = key
            if len(self._opened) > _OPENED_CACHE:
                self._opened.popitem(last=False)
        return key
