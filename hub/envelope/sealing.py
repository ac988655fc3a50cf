"""Seal and open hub records: the construction of ``hub.envelope.crypto`` on Kafka headers.

Both directions use it: a publisher seals to the hub (recipient ``hub``), the hub seals each
minimised delivery to its recipient. Headers added (CloudEvents extension attributes):

===================  =====================================================================
``ce_hubrecipient``  the party the payload is sealed to
``ce_hubkid``        recipient encryption key id
``ce_hubsuite``      HPKE suite (``x25519`` or ``mlkem768-x25519``)
``ce_hubdekid``      epoch data key id
``ce_hubdek``        base64(HPKE enc || ct) of the epoch data key
``ce_hubescrow``     (deliveries only) the case key sealed under the hub's case secret, so the
                     hub can reopen its own deliveries until the case is shredded
``ce_hubsigkid``     signing key id
``ce_hubsig``        base64 Ed25519 signature over ``signing_input``
===================  =====================================================================

The attribute headers come from ``wire.to_headers``: envelope v2, ``content-type``
``wire.SEALED`` and the payload's own type in ``ce_hubcontenttype``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.envelope import crypto, wire
from hub.models import EventAttributes

__all__ = [
    "KeyDirectory",
    "OpenedRecord",
    "SealedRecord",
    "Signer",
    "context_aad",
    "open_record",
    "seal_record",
]

REQUIRED = (
    "ce_hubrecipient",
    "ce_hubkid",
    "ce_hubsuite",
    "ce_hubdekid",
    "ce_hubdek",
    "ce_hubsigkid",
    "ce_hubsig",
)


class Signer(Protocol):
    """Signs with one key (a dev key file, or a KMS that never releases the key)."""

    @property
    def kid(self) -> str:
        """Signing key id."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of ``data``."""
        ...


class KeyDirectory(Protocol):
    """Public keys by id, with owner and status: what a verifier needs."""

    def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
        """(owner party, public key, revoked?) for a signing key id; KeyError if unknown."""
        ...


@dataclass(frozen=True)
class SealedRecord:
    """Headers and value ready to produce."""

    headers: list[tuple[str, bytes]]
    value: bytes
    #: hex SHA-256 of ``value``, as signed (the audit record's ``payload_sha256``)
    value_sha256: str


@dataclass(frozen=True)
class OpenedRecord:
    """A verified, decrypted record: who signed it and the plaintext."""

    signer: str
    signer_kid: str
    plaintext: bytes
    headers: dict[str, str]
    case_key: bytes


def context_aad(headers: Mapping[str, str], key: bytes | None) -> bytes:
    """AAD: the fields a ciphertext is bound to (moving it anywhere else fails)."""
    if all(type(headers.get(name)) in _TEXT_OR_NONE for name in _AAD_HEADERS):
        # every record's case: written out by hand (``_context_aad``), the same bytes
        return _context_aad(headers, crypto.key_json(key))
    return crypto.canonical_context(
        {
            "id": headers.get("ce_id"),
            "source": headers.get("ce_source"),
            "type": headers.get("ce_type"),
            "time": headers.get("ce_time"),
            "subject": headers.get("ce_subject"),
            "recipient": headers.get("ce_hubrecipient"),
            "protocol": headers.get("ce_hubprotocol"),
            "dek": headers.get("ce_hubdekid"),
            "kid": headers.get("ce_hubkid"),
            "key": crypto.b64e(key) if key is not None else None,
        }
    )


#: the headers ``context_aad`` binds, and the value types ``_context_aad`` writes out
_AAD_HEADERS = (
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "ce_hubrecipient",
    "ce_hubprotocol",
    "ce_hubdekid",
    "ce_hubkid",
)
_TEXT_OR_NONE = (str, type(None))


def seal_record(
    attrs: EventAttributes,
    *,
    key: bytes | None,
    plaintext: bytes,
    recipient: str,
    recipient_kid: str,
    suite: str,
    recipient_public: Any,
    cache: crypto.DataKeyCache,
    signer: Signer,
    extensions: Mapping[str, str] | None = None,
    escrow: Callable[[bytes, str], str | None] | None = None,
    data_key: crypto.DataKey | None = None,
    nonce: bytes | None = None,
) -> SealedRecord:
    """Encrypt ``plaintext`` to ``recipient`` and sign the whole record.

    An event fanned out to many recipients is sealed once per recipient with the same
    attributes: the attribute headers are rendered once per event (``_attribute_headers``)
    and only the per-recipient extensions are added to them. The bytes are exactly those of
    ``wire.to_headers``, ``context_aad`` and ``crypto.signing_input`` (the vectors in
    ``tests/vectors/envelope`` and ``tests/unit/test_envelope.py`` hold them to it).

    ``data_key`` and ``nonce`` fix what is otherwise random, for the byte-exact vectors in
    ``tests/vectors/envelope`` (``scripts/make_envelope_vectors.py``); never in production.
    """
    dk = data_key or cache.get(
        recipient=recipient, kid=recipient_kid, suite=suite, public_key=recipient_public
    )
    ext = dict(extensions) if extensions else {}
    ext["hubrecipient"] = recipient
    ext["hubkid"] = recipient_kid
    ext["hubsuite"] = suite
    ext["hubdekid"] = dk.dek_id
    ext["hubdek"] = dk.wrapped_b64
    ext["hubsigkid"] = signer.kid
    ck = dk.case_key(key)
    escrowed = escrow(ck, dk.dek_id) if escrow is not None else None
    if escrowed is not None:
        ext["hubescrow"] = escrowed
    key_json = crypto.key_json(key)
    layout = _layout(attrs, ext)
    if layout is None:  # the reference path: ``wire.to_headers`` and the SDK's checks
        return _seal_slow(attrs, ext, ck, key_json, plaintext, signer, nonce)
    aad = _aad(
        _json_str(dk.dek_id),
        layout.id_json,
        key_json,
        _json_str(recipient_kid),
        _field(ext, "hubprotocol"),
        _json_str(recipient),
        layout.aad_tail,
    )
    value = crypto.seal_payload(ck, plaintext, aad, nonce=nonce)
    members: list[str] = []
    headers: list[tuple[str, bytes]] = []
    for header, member, raw, name in layout.parts:
        if name is None:
            members.append(member)
            headers.append((header, raw))
        else:
            text = ext[name]
            members.append(member + _json_str(text))  # names are plain ASCII (SDK)
            headers.append((header, text.encode()))
    digest = hashlib.sha256(value).hexdigest()
    signature = signer.sign(crypto.signing_text(",".join(members), key_json, digest))
    headers.insert(layout.sig_at, ("ce_hubsig", crypto.b64e(signature).encode()))
    return SealedRecord(headers=headers, value=value, value_sha256=digest)


def _seal_slow(
    attrs: EventAttributes,
    ext: Mapping[str, str],
    ck: bytes,
    key_json: str,
    plaintext: bytes,
    signer: Signer,
    nonce: bytes | None,
) -> SealedRecord:
    """``seal_record`` through ``wire.to_headers`` itself, the reference path.

    Taken for a new set of extension names (the SDK checks them once) and anything unusual
    (a value that is not a string, a name that is also an attribute's).
    """
    text = {k: v.decode() for k, v in wire.to_headers(attrs, ext)}
    encoded = {k: f"{_json_str(k)}:{_json_str(v)}" for k, v in text.items()}
    value = crypto.seal_payload(ck, plaintext, _context_aad(text, key_json), nonce=nonce)
    names = sorted(text)  # every header (``ce_*`` or ``content-type``), no ``ce_hubsig`` yet
    digest = hashlib.sha256(value).hexdigest()
    signature = signer.sign(
        crypto.signing_text(",".join([encoded[n] for n in names]), key_json, digest)
    )
    text["ce_hubsig"] = crypto.b64e(signature)
    names.append("ce_hubsig")
    names.sort()
    ext_names = frozenset(ext)
    if (
        ext_names.isdisjoint(_RESERVED_NAMES)
        and all(_PLAIN_NAME.fullmatch(n) for n in ext_names)
        and all(type(v) is str for v in ext.values())
    ):
        _checked_extensions.add(ext_names)  # the SDK accepted these names
    return SealedRecord(
        headers=[(k, text[k].encode()) for k in names],
        value=value,
        value_sha256=digest,
    )


_json_str = crypto.json_str  # one JSON string literal for every hand-written member


def _field(text: Mapping[str, str], name: str) -> str:
    """A header's value as a JSON member's value: its string literal, or null if absent."""
    value = text.get(name)
    return "null" if value is None else _json_str(value)


def _context_aad(text: Mapping[str, str], key_json: str) -> bytes:
    """``context_aad(text, key)`` written out: the same sorted keys, the same bytes."""
    return _aad(
        _field(text, "ce_hubdekid"),
        _field(text, "ce_id"),
        key_json,
        _field(text, "ce_hubkid"),
        _field(text, "ce_hubprotocol"),
        _field(text, "ce_hubrecipient"),
        _aad_tail(text),
    )


def _aad(dek: str, id_: str, key: str, kid: str, protocol: str, recipient: str, tail: str) -> bytes:
    """``context_aad``'s bytes from its members' values in canonical JSON (keys sorted).

    ``tail`` is ``_aad_tail``: the attribute members, the same for every recipient.
    """
    return (
        f'{{"dek":{dek},"id":{id_},"key":{key},"kid":{kid},"protocol":{protocol},'
        f'"recipient":{recipient},{tail}'
    ).encode()


def _aad_tail(text: Mapping[str, str]) -> str:
    """The members of ``context_aad`` after ``recipient``: source, subject, time, type."""
    return (
        f'"source":{_field(text, "ce_source")},"subject":{_field(text, "ce_subject")},'
        f'"time":{_field(text, "ce_time")},"type":{_field(text, "ce_type")}}}'
    )


# Not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, which
# made building one 3.7 times slower (140 -> 513 ns; one a sealed event, on the router's
# path); nothing changes a layout once built. ``eq=False``: compared by identity, as before.
@dataclass(slots=True, eq=False)
class _Layout:
    """One event's headers for one set of extension names, worked out once for its fan-out.

    ``parts`` is every header but ``ce_hubsig`` in ``sort_keys`` order, each as (header,
    member, bytes, extension): an attribute header has its whole JSON member and its bytes
    and no extension; an extension's header has its member's ``"name":`` prefix, no bytes,
    and the extension it comes from. ``sig_at`` is where ``ce_hubsig`` sorts among them.
    ``id_json`` and ``aad_tail`` are the attribute parts of ``context_aad``.
    """

    parts: tuple[tuple[str, str, bytes, str | None], ...]
    sig_at: int
    id_json: str
    aad_tail: str


#: header order by (attribute header names, extension names): (header, its JSON name
#: member prefix, the extension it comes from or None) in ``sort_keys`` order, and where
#: ``ce_hubsig`` sorts; a handful of entries (one per kind of record), cleared whole if full
_orders: dict[
    tuple[tuple[str, ...], frozenset[str]],
    tuple[tuple[tuple[str, str, str | None], ...], int],
] = {}
_ORDERS_KEPT = 64
#: the attributes object, extension names and layout found last: an event's recipients are
#: sealed one after another with one frozen ``EventAttributes``, so most lookups are this one
#: (by identity); replaced whole, so a thread never reads one call's attributes with another's
#: layout. Any other attributes object gets its layout worked out afresh (a few microseconds).
_last_layout: tuple[object, frozenset[str], _Layout | None] = (None, frozenset(), None)
#: extension-name sets ``wire.to_headers`` (so the CloudEvents SDK) has accepted
_checked_extensions: set[frozenset[str]] = set()
#: extension names the fast path writes into JSON as they are: the SDK's rule, but whole
#: (its ``^[a-z0-9]+$`` lets a trailing newline through, which JSON escapes)
_PLAIN_NAME = re.compile(r"[a-z0-9]+")
#: names an extension may not take on the fast path: CloudEvents attributes, and the
#: envelope's own ``hubcontenttype`` (``wire.to_headers`` sets it after the extensions) and
#: ``hubsig`` (the signature, added last)
_RESERVED_NAMES = frozenset(
    (
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "datacontenttype",
        "subject",
        "dataschema",
        wire.INNER_TYPE,
        "hubsig",
    )
)


def _layout(attrs: EventAttributes, ext: Mapping[str, Any]) -> _Layout | None:
    """The layout for these attributes and extension names; None: take the slow path.

    The attribute headers are ``wire.to_headers(attrs)``'s, as text (``wire.attribute_texts``,
    or ``to_headers`` itself where that cannot say); the extensions are added as
    ``to_headers`` adds them (``ce_`` + name, the text as given). A new set of extension
    names, or any value that is not a string, goes through ``to_headers`` itself
    (``_seal_slow``), so the SDK's naming checks run.
    """
    names = frozenset(ext)
    if names not in _checked_extensions:
        return None
    for value in ext.values():
        if type(value) is not str:
            return None
    global _last_layout  # one tuple, swapped whole: safe across threads
    last = _last_layout
    if last[0] is attrs and last[1] == names:
        return last[2]  # the same event's next recipient (the attributes are frozen)
    base = wire.attribute_texts(attrs)
    if base is None:  # a shape the SDK has not checked, or a value it may refuse
        base = {k: v.decode() for k, v in wire.to_headers(attrs)}
    shape = (tuple(base), names)
    found = _orders.get(shape)
    if found is None:
        found = _order(base, ext)
        if len(_orders) >= _ORDERS_KEPT:
            _orders.clear()
        _orders[shape] = found
    order, sig_at = found
    layout = _Layout(
        tuple(
            [
                (header, prefix + _json_str(base[header]), base[header].encode(), None)
                if name is None
                else (header, prefix, b"", name)
                for header, prefix, name in order
            ]
        ),
        sig_at,
        _json_str(base["ce_id"]),
        _aad_tail(base),
    )
    _last_layout = (attrs, names, layout)
    return layout


def _order(
    base: Mapping[str, str], ext: Mapping[str, Any]
) -> tuple[tuple[tuple[str, str, str | None], ...], int]:
    """Headers in ``sort_keys`` order with their JSON name prefix and extension (or None)."""
    by_header: dict[str, str | None] = dict.fromkeys(base)
    for name in ext:
        by_header["ce_" + name] = name
    order = tuple((h, f"{_json_str(h)}:", name) for h, name in sorted(by_header.items()))
    return order, sum(1 for header, _, _ in order if header < "ce_hubsig")


def open_record(
    headers: Mapping[str, str],
    *,
    key: bytes | None,
    value: bytes,
    recipient: str,
    directory: KeyDirectory,
    hpke_open: Callable[[str, bytes, bytes], bytes],
    expected_signer: str,
) -> OpenedRecord:
    """Verify the signature (key known, not revoked, owned by ``expected_signer``), decrypt.

    ``hpke_open(kid, ciphertext, info)`` opens the data key: a dev key file does it locally,
    a KMS would do it remotely, so the private key never needs to leave it.

    Raises:
        crypto.CryptoError: with ``reason`` one of unsigned, unknown_key, revoked_key,
            wrong_signer, bad_signature, not_for_recipient, bad_ciphertext, bad_envelope.
    """
    missing = [h for h in REQUIRED if h not in headers]
    if missing:
        raise crypto.CryptoError(
            f"unsigned or unsealed: missing header(s) {', '.join(missing)}", "unsigned"
        )
    kid = headers["ce_hubsigkid"]
    try:
        owner, public, revoked = directory.signing_key(kid)
    except KeyError:
        raise crypto.CryptoError(
            f"signing key {kid} is unknown to this hub", "unknown_key"
        ) from None
    if revoked:
        raise crypto.CryptoError(f"signing key {kid} is revoked", "revoked_key")
    if owner != expected_signer:
        raise crypto.CryptoError(
            f"signed by {owner}'s key {kid}: expected a key of {expected_signer}", "wrong_signer"
        )
    signature = crypto.b64d(headers["ce_hubsig"], what="ce_hubsig")
    crypto.verify_signature(public, signature, crypto.signing_input(headers, key, value))
    if headers["ce_hubrecipient"] != recipient:
        raise crypto.CryptoError(
            f"sealed for {headers['ce_hubrecipient']}, not for {recipient}", "not_for_recipient"
        )
    dek_id = headers["ce_hubdekid"]
    epoch_key = crypto.unwrap_data_key(
        headers["ce_hubkid"],
        crypto.b64d(headers["ce_hubdek"], what="ce_hubdek"),
        hpke_open,
        recipient=recipient,
        dek_id=dek_id,
    )
    ck = _expander_of(epoch_key).case_key(dek_id=dek_id, kafka_key=key)
    plaintext = crypto.open_payload(ck, value, context_aad(headers, key))
    return OpenedRecord(
        signer=owner, signer_kid=kid, plaintext=plaintext, headers=dict(headers), case_key=ck
    )


#: ``crypto.case_key`` for the epoch keys opened lately: a sender keeps one epoch key per
#: recipient key for up to ``DataKeyCache.max_uses`` records, so a stream's extract (and its
#: expand key's setup) is done once per epoch, not per record. The epoch keys themselves are
#: kept as long by ``PartyEnvelope``'s opened cache.
_expander_of = functools.lru_cache(maxsize=256)(crypto.CaseKeyExpander)
