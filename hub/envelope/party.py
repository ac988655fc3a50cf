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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.envelope import crypto
from hub.envelope.sealing import OpenedRecord, SealedRecord, open_record, seal_record
from hub.errors import KeyRevokedError, KeyStoreError, UnknownKeyError
from hub.keys.model import KeyStatus
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

    def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
        try:
            record = self._store.by_key_id(kid)
        except UnknownKeyError:
            raise KeyError(kid) from None
        if kid != record.signing_key_id:
            raise KeyError(kid)
        return record.party, record.signing_public(), record.status is KeyStatus.REVOKED


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
        target = self.store.active(recipient).encryption_for(suite)
        me = self.store.active(self.party)
        return seal_record(
            attrs,
            key=key,
            plaintext=plaintext,
            recipient=recipient,
            recipient_kid=target.key_id,
            suite=target.suite.value,
            recipient_public=target.public(),
            cache=self.cache,
            signer=_StoreSigner(self.store, me.signing_key_id),
            extensions=extensions,
            escrow=escrow,
        )

    def open(
        self, headers: Mapping[str, str], *, key: bytes | None, value: bytes, expected_signer: str
    ) -> OpenedRecord:
        """Verify that ``expected_signer`` signed it, and decrypt it with this party's keys.

        The ``ce_hubsuite`` header must name the suite of the ``ce_hubkid`` key (both are
        signed; a mismatch is a malformed envelope, reason ``bad_envelope``).
        """
        kid, suite = headers.get("ce_hubkid"), headers.get("ce_hubsuite")
        if kid is not None and suite is not None:
            try:
                enc = self.store.by_key_id(kid).encryption_key(kid)
            except UnknownKeyError:
                enc = None  # open_record reports it (not_for_recipient)
            if enc is not None and enc.suite.value != suite:
                raise crypto.CryptoError(
                    f"ce_hubsuite: expected {enc.suite.value} for key {kid}, got {suite!r}",
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

    def _hpke_open(self, kid: str, ciphertext: bytes, info: bytes) -> bytes:
        slot = (kid, hashlib.sha256(info).hexdigest(), hashlib.sha256(ciphertext).hexdigest())
        with self._lock:
            if slot in self._opened:
                self._opened.move_to_end(slot)
                return self._opened[slot]
        try:
            record = self.store.by_key_id(kid)
        except UnknownKeyError:
            raise KeyError(kid) from None
        if record.party != self.party or record.encryption_key(kid) is None:
            raise KeyError(kid)
        if record.status is KeyStatus.REVOKED:
            raise crypto.CryptoError(f"sealed to revoked key {kid}", "revoked_key")
        try:
            key = self.store.hpke_open(kid, ciphertext, info=info)
        except (KeyStoreError, KeyRevokedError) as exc:
            raise crypto.CryptoError(str(exc), "bad_ciphertext") from exc
        with self._lock:
            self._opened[slot] = key
            if len(self._opened) > _OPENED_CACHE:
                self._opened.popitem(last=False)
        return key
