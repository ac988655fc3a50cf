"""Hub-side escrow of per-case message keys, and crypto-shredding by destroying them.

Every delivery carries ``ce_hubescrow``: the delivery's case key sealed (AES-256-GCM) under
the hub's secret for that case (``hub.keys.cases.CaseKeys``). While the case secret exists
the hub can reopen its own stored deliveries (breach review, re-delivery after a recipient
loses data); ``hub keys shred --case REF`` destroys the secret, after which no stored
ciphertext of that case on ``hub.out.*`` can be opened on the hub side. Recipients keep what
they were lawfully given; Art 19 notices reach them through the audit log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.envelope import crypto
from hub.envelope.sealing import context_aad
from hub.envelope.wire import WireMessage
from hub.errors import CaseShreddedError
from hub.keys.cases import CaseKeys

__all__ = ["make_escrow", "open_escrowed", "reescrow"]

_AAD = b"hub/escrow/v1\x00"


def make_escrow(cases: CaseKeys) -> Callable[[str], Callable[[bytes, str], str] | None]:
    """The router's escrow hook: a sealer of case keys under a case's secret.

    Called once per event (the secret is read, and the shred tombstone checked, once for all
    of the event's deliveries); None when the case is shredded: a shredded case gets no
    hub-side copy of new keys either.
    """

    def for_case(case_ref: str) -> Callable[[bytes, str], str] | None:
        try:
            secret = cases.key_for(case_ref)
        except CaseShreddedError:
            return None
        aead = AESGCM(secret)

        def seal(case_key: bytes, dek_id: str) -> str:
            nonce = os.urandom(12)
            return crypto.b64e(nonce + aead.encrypt(nonce, case_key, _AAD + dek_id.encode()))

        return seal

    return for_case


def reescrow(
    message: WireMessage, *, old: bytes, new: bytes, sign: Callable[[str, bytes], bytes]
) -> WireMessage | None:
    """The delivery with its escrow sealed under case secret ``new`` instead of ``old``.

    For deliveries sealed under a case secret that was never stored (another worker stored
    the case's first, ``hub.keys.cases.CaseKeys.deferred``): the escrowed case key is opened
    with ``old`` and sealed again under ``new``, and the record signed again
    (``sign(kid, data)`` with the key its ``ce_hubsigkid`` names), since the signature
    covers the escrow header. Value and every other header are unchanged, so the recipient
    opens it as before and the audit record's payload digest still holds.

    Returns None when the delivery's escrow is not under ``old`` (or it has none).
    """
    headers = {name: value.decode() for name, value in message.headers}
    escrowed = headers.get("ce_hubescrow")
    dek_id = headers.get("ce_hubdekid")
    if escrowed is None or dek_id is None or "ce_hubsigkid" not in headers:
        return None
    blob = crypto.b64d(escrowed, what="ce_hubescrow")
    aad = _AAD + dek_id.encode()
    try:
        case_key = AESGCM(old).decrypt(blob[:12], blob[12:], aad)
    except InvalidTag:
        return None
    nonce = os.urandom(12)
    headers["ce_hubescrow"] = crypto.b64e(nonce + AESGCM(new).encrypt(nonce, case_key, aad))
    signature = sign(
        headers["ce_hubsigkid"], crypto.signing_input(headers, message.key, message.value)
    )
    headers["ce_hubsig"] = crypto.b64e(signature)
    return WireMessage(
        topic=message.topic,
        key=message.key,
        value=message.value,
        headers=[(name, headers[name].encode()) for name in sorted(headers)],
    )


def open_escrowed(
    cases: CaseKeys, case_ref: str, headers: Mapping[str, str], *, key: bytes | None, value: bytes
) -> bytes:
    """Reopen a stored delivery on the hub side; fails once the case is shredded.

    Raises:
        CaseShreddedError: the case secret was destroyed.
        crypto.CryptoError: no escrow header, or the record was altered.
    """
    if "ce_hubescrow" not in headers:
        raise crypto.CryptoError("delivery carries no hub-side escrow", "bad_envelope")
    secret = cases.key_for(case_ref)  # raises CaseShreddedError once shredded
    blob = crypto.b64d(headers["ce_hubescrow"], what="ce_hubescrow")
    try:
        case_key = AESGCM(secret).decrypt(
            blob[:12], blob[12:], _AAD + headers["ce_hubdekid"].encode()
        )
    except Exception as exc:  # InvalidTag, ValueError
        raise crypto.CryptoError("escrowed case key does not open", "bad_ciphertext") from exc
    return crypto.open_payload(case_key, value, context_aad(headers, key))
