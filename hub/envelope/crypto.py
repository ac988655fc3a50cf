"""End-to-end payload protection: HPKE-wrapped epoch data keys, AEAD payloads, Ed25519.

The construction, so that an agency can implement it in any language:

1. **Data keys (envelope encryption).** A sender keeps a random 32-byte *epoch key* per
   recipient encryption key, used for at most ``max_uses`` messages or ``max_age`` seconds
   (as Kroxylicious and Confluent do), so the ~60-80 µs HPKE seal is paid once per epoch,
   not per message. The epoch key travels with every message, sealed with HPKE (RFC 9180,
   mode base) to the recipient's public key: ``ce_hubdek`` = base64(enc || ct), with
   ``info = "hub/dek/v1" 0x00 recipient 0x00 dek_id`` (binds the wrap to one recipient).
2. **Per-case message keys.** ``case key = HKDF-SHA256(ikm=epoch key, salt=none,
   info="hub/case/v1" 0x00 dek_id 0x00 kafka key)``: every case (Kafka key) gets its own key,
   so the hub-side escrow (below) can be destroyed case by case (crypto-shredding).
3. **Payload.** ``value = nonce(12) || AES-256-GCM(case key, nonce, plaintext, aad)`` where
   ``aad`` is the canonical context: sorted-key compact JSON of the event id, source, type,
   time, subject, recipient, protocol hash, dek id, key id and Kafka key. Moving a
   ciphertext to another record or recipient changes the aad and fails authentication.
4. **Signature.** The sender signs ``signing_input``: canonical JSON of every ``ce_*`` header
   and ``content-type`` (except ``ce_hubsig``), the Kafka key (base64) and the SHA-256 of the
   value, with Ed25519; ``ce_hubsigkid`` names the key, ``ce_hubsig`` carries it (base64).

HPKE suites: ``x25519`` = DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM;
``mlkem768-x25519`` = the ML-KEM-768 + X25519 hybrid KEM with the same KDF and AEAD, for
long-lived safeguarding data (harvest now, decrypt later).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.canonical import canonical_json
from hub.envelope import ed25519
from hub.errors import EventError

__all__ = [
    "SUITES",
    "CaseKeyExpander",
    "CryptoError",
    "DataKey",
    "DataKeyCache",
    "HmacSha256",
    "b64d",
    "b64e",
    "canonical_context",
    "case_key",
    "case_key_from_prk",
    "hkdf_extract",
    "open_payload",
    "seal_payload",
    "signing_input",
    "unwrap_data_key",
    "verify_signature",
    "wrap_info",
]

SUITES: dict[str, hpke.Suite] = {
    "x25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    "mlkem768-x25519": hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}
_NONCE = 12


class CryptoError(EventError):
    """A signature, key or ciphertext does not verify; ``reason`` is machine-readable."""

    def __init__(self, message: str, reason: str = "bad_signature") -> None:
        super().__init__(message)
        self.reason = reason


def b64e(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode()


def b64d(text: str, *, what: str) -> bytes:
    """Decode base64 or fail with a message naming the field."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise CryptoError(f"{what}: not valid base64", "bad_envelope") from exc


def canonical_context(context: Mapping[str, Any]) -> bytes:
    """Sorted-key compact JSON: the bytes both sides must agree on exactly."""
    return canonical_json(context)


def wrap_info(recipient: str, dek_id: str) -> bytes:
    """HPKE ``info`` for a data key: binds the wrap to its recipient and id."""
    return b"hub/dek/v1\x00" + recipient.encode() + b"\x00" + dek_id.encode()


def case_key(epoch_key: bytes, *, dek_id: str, kafka_key: bytes | None) -> bytes:
    """The per-case message key derived from an epoch key (HKDF-SHA256, RFC 5869).

    Written out with HMAC-SHA256: for a 32-byte output HKDF is one extract and one expand
    block, ``PRK = HMAC(salt = 32 zero bytes, epoch key)`` (RFC 5869 section 2.2: no salt
    means HashLen zeros) and ``OKM = HMAC(PRK, info || 0x01)`` (section 2.3). Equal to
    pyca's ``HKDF(SHA256(), 32, salt=None, info)`` (``tests/unit/test_envelope.py``) at a
    fraction of its cost; the router derives one per delivery.
    """
    return case_key_from_prk(hkdf_extract(epoch_key), dek_id=dek_id, kafka_key=kafka_key)


def hkdf_extract(epoch_key: bytes) -> bytes:
    """HKDF-Extract with no salt (RFC 5869 section 2.2): the PRK every case key expands."""
    return hmac.digest(_HKDF_ZERO_SALT, epoch_key, "sha256")


def case_key_from_prk(prk: bytes, *, dek_id: str, kafka_key: bytes | None) -> bytes:
    """HKDF-Expand of one 32-byte block (RFC 5869 section 2.3): ``case_key`` after extract."""
    return hmac.digest(prk, _case_info(dek_id, kafka_key) + b"\x01", "sha256")


def _case_info(dek_id: str, kafka_key: bytes | None) -> bytes:
    """HKDF ``info`` of a case key: the epoch key's id and the record's Kafka key."""
    return b"hub/case/v1\x00" + dek_id.encode() + b"\x00" + (kafka_key or b"")


_HKDF_ZERO_SALT = bytes(32)


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, for a key that signs many messages.

    ``digest(message)`` is ``hmac.digest(key, message, "sha256")``: the padded key's inner
    and outer blocks are hashed once, here, and each message costs two copies of those
    hashes and two short updates (``hmac.digest`` sets the key up again on every call: about
    half of its cost for a message as short as a case key's info or a pseudonym's reference).
    ``tests/unit/test_envelope_shared.py`` holds it to ``hmac.digest`` for keys of any length.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:  # RFC 2104 section 2: a longer key is hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        """The 32-byte HMAC of ``message``."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class CaseKeyExpander:
    """``case_key`` for one epoch key: extracted once, each case key one HKDF-Expand block.

    An epoch key serves up to ``DataKeyCache.max_uses`` records, each of its own case, on
    the sealing side (``DataKey.case_key``) and the opening side (``sealing.open_record``).
    """

    __slots__ = ("_expand",)

    def __init__(self, epoch_key: bytes) -> None:
        self._expand = HmacSha256(hkdf_extract(epoch_key))

    def case_key(self, *, dek_id: str, kafka_key: bytes | None) -> bytes:
        """``case_key(epoch_key, dek_id=dek_id, kafka_key=kafka_key)``."""
        return self._expand.digest(_case_info(dek_id, kafka_key) + b"\x01")


def case_key_reference(epoch_key: bytes, *, dek_id: str, kafka_key: bytes | None) -> bytes:
    """``case_key`` with pyca's HKDF, the reference the tests compare it with."""
    info = _case_info(dek_id, kafka_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(epoch_key)


def seal_payload(key: bytes, plaintext: bytes, aad: bytes, *, nonce: bytes | None = None) -> bytes:
    """``nonce || AES-256-GCM(key, nonce, plaintext, aad)`` with a random 96-bit nonce.

    ``nonce`` is for the byte-exact test vectors only: a nonce repeated under one key
    breaks GCM's confidentiality and authenticity (NIST SP 800-38D section 8).
    """
    if nonce is None:
        nonce = os.urandom(_NONCE)
    elif len(nonce) != _NONCE:
        raise CryptoError(f"nonce: expected {_NONCE} bytes, got {len(nonce)}", "bad_envelope")
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_payload(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Open a sealed payload; a wrong key, context or any flipped bit fails."""
    if len(blob) < _NONCE + 16:
        raise CryptoError("payload ciphertext is truncated", "bad_ciphertext")
    try:
        return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
    except InvalidTag as exc:
        raise CryptoError(
            "payload does not authenticate: wrong key, or the ciphertext or its context "
            "(event id, recipient, type, protocol) was changed",
            "bad_ciphertext",
        ) from exc


def unwrap_data_key(
    kid: str,
    wrapped: bytes,
    hpke_open: Callable[[str, bytes, bytes], bytes],
    *,
    recipient: str,
    dek_id: str,
) -> bytes:
    """Open an HPKE-wrapped data key with the recipient's key ``kid`` (via ``hpke_open``)."""
    try:
        key = hpke_open(kid, wrapped, wrap_info(recipient, dek_id))
    except CryptoError:
        raise
    except KeyError as exc:
        raise CryptoError(
            f"no private key {kid} here: sealed for another key", "not_for_recipient"
        ) from exc
    except Exception as exc:  # pyca raises several types for a failed HPKE open
        raise CryptoError(
            f"data key {dek_id} does not open with {recipient}'s key {kid}: not addressed to "
            "it, or altered",
            "bad_ciphertext",
        ) from exc
    if len(key) != 32:
        raise CryptoError("data key has the wrong length", "bad_ciphertext")
    return key


def signing_input(headers: Mapping[str, str], key: bytes | None, value: bytes) -> bytes:
    """What the Ed25519 signature covers: every CloudEvents header, the key, the value."""
    names = _covered(headers)
    values = [headers[name] for name, _ in names]
    if all([type(v) is str for v in values]):
        # ``canonical_context`` written out for string headers (every record's): the same
        # sorted members and escapes (``test_envelope`` holds the two to each other)
        members = ",".join(
            [f"{member}{json_str(v)}" for (_, member), v in zip(names, values, strict=True)]
        )
        return signing_text(members, key_json(key), hashlib.sha256(value).hexdigest())
    covered = dict(zip([name for name, _ in names], values, strict=True))
    return canonical_context(
        {
            "headers": covered,
            "key": b64e(key) if key is not None else None,
            "value_sha256": hashlib.sha256(value).hexdigest(),
        }
    )


def _covered(headers: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The headers ``signing_input`` covers, sorted, each with its ``"name":`` JSON prefix.

    Kept per set of header names in the mapping's order (a sender's records carry the same
    headers in the same order, record after record); bounded, the names being the sender's:
    64 sets at most, each of at most 64 names of at most 1,024 characters together (a larger
    set is worked out afresh; a record's 16 to 20 names come to about 200). Both bounds, since
    every name is an object and every covered one a prefix and a tuple besides: 4,000 names
    of one character each held some 350 KB a set. All kept sets come to 1.4 MB at most
    (measured: 64 names each, of astral characters, four bytes a character), not 22 MB.
    """
    shape = tuple(headers)
    found = _covered_by_shape.get(shape)
    if found is None:
        names = sorted(
            [k for k in shape if (k.startswith("ce_") or k == "content-type") and k != "ce_hubsig"]
        )
        found = tuple((name, json_str(name) + ":") for name in names)
        if len(shape) <= _SHAPE_NAMES_KEPT and sum(map(len, shape)) <= _SHAPE_CHARS_KEPT:
            if len(_covered_by_shape) >= _SHAPES_KEPT:
                _covered_by_shape.clear()
            _covered_by_shape[shape] = found
    return found


_covered_by_shape: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
_SHAPES_KEPT = 64
_SHAPE_CHARS_KEPT = 1024
#: a record the hub writes carries 16 to 20 or so headers
_SHAPE_NAMES_KEPT = 64


#: a JSON string literal exactly as ``canonical_json`` writes one (``ensure_ascii`` off: the
#: C ``encode_basestring`` its encoder calls); for the canonical JSON written out by hand
json_str: Callable[[str], str] = json.encoder.encode_basestring


def key_json(key: bytes | None) -> str:
    """The record key as the signed context writes it: base64 as a JSON string, or null."""
    return json_str(b64e(key)) if key is not None else "null"


def signing_text(members: str, key_json: str, value_sha256: str) -> bytes:
    """``signing_input`` from its parts in canonical JSON, for callers that write it by hand.

    ``members`` are the covered headers' ``"name":"value"`` members in sorted order, joined
    by commas; ``key_json`` is ``key_json(key)``; ``value_sha256`` the value's hex SHA-256.
    """
    return f'{{"headers":{{{members}}},"key":{key_json},"value_sha256":"{value_sha256}"}}'.encode()


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    """Verify an Ed25519 signature or raise ``CryptoError``."""
    try:
        ed25519.verify(public_key, signature, message)  # libsodium, as strict as OpenSSL
    except InvalidSignature as exc:
        raise CryptoError(
            "signature does not verify: the event was altered or signed by another key",
            "bad_signature",
        ) from exc


@dataclass
class DataKey:
    """One epoch key for one recipient key, with its HPKE wrap (computed once)."""

    dek_id: str
    key: bytes
    wrapped: bytes
    recipient: str
    kid: str
    suite: str
    created: float
    uses: int = 0

    @functools.cached_property
    def wrapped_b64(self) -> str:
        """``ce_hubdek``: base64 of the wrapped key, encoded once for the whole epoch."""
        return b64e(self.wrapped)

    def case_key(self, kafka_key: bytes | None) -> bytes:
        """``case_key(self.key, dek_id=self.dek_id, kafka_key=...)``, extracting once."""
        expander = self.__dict__.get("_expander")
        if expander is None:
            expander = self.__dict__["_expander"] = CaseKeyExpander(self.key)
        return expander.case_key(dek_id=self.dek_id, kafka_key=kafka_key)


@dataclass
class DataKeyCache:
    """Epoch data keys per recipient key, rotated by use count and age.

    Bounded key reuse: the HPKE seal is the expensive step, so one epoch key serves up to
    ``max_uses`` messages or ``max_age`` seconds for one recipient key; a new recipient key
    (rotation) starts a new epoch at once. Keys live only in memory.
    """

    max_uses: int = 1000
    max_age: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    seals: int = 0
    reuses: int = 0
    _keys: dict[str, DataKey] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, *, recipient: str, kid: str, suite: str, public_key: Any) -> DataKey:
        """The current epoch key for ``kid`` (sealing a new one when due)."""
        with self._lock:
            now = self.clock()
            current = self._keys.get(kid)
            if (
                current is None
                or current.uses >= self.max_uses
                or now - current.created >= self.max_age
            ):
                dek_id = b64e(os.urandom(12)).replace("+", "-").replace("/", "_")
                key = os.urandom(32)
                wrapped = SUITES[suite].encrypt(key, public_key, wrap_info(recipient, dek_id))
                current = DataKey(
                    dek_id=dek_id,
                    key=key,
                    wrapped=wrapped,
                    recipient=recipient,
                    kid=kid,
                    suite=suite,
                    created=now,
                )
                self._keys[kid] = current
                self.seals += 1
            else:
                self.reuses += 1
            current.uses += 1
            return current
