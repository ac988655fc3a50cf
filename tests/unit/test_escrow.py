"""``hub.envelope.escrow.reescrow``: a delivery's escrow moved to the case key that was kept."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.envelope import crypto
from hub.envelope.escrow import reescrow
from hub.envelope.wire import WireMessage

_AAD = b"hub/escrow/v1\x00"
CASE_KEY = os.urandom(32)


def escrowed(secret: bytes, dek: str = "dek-1") -> str:
    nonce = os.urandom(12)
    return crypto.b64e(nonce + AESGCM(secret).encrypt(nonce, CASE_KEY, _AAD + dek.encode()))


def delivery(escrow: str | None) -> WireMessage:
    headers = {
        "ce_id": "e-1",
        "ce_hubdekid": "dek-1",
        "ce_hubsigkid": "hub-sig-1",
        "ce_hubsig": "old-signature",
        "content-type": "application/vnd.hub.sealed",
    }
    if escrow is not None:
        headers["ce_hubescrow"] = escrow
    return WireMessage(
        topic="hub.out.police",
        key=b"CASE-1",
        value=b"ciphertext",
        headers=[(k, v.encode()) for k, v in sorted(headers.items())],
    )


def test_the_escrow_is_sealed_under_the_kept_key_and_the_record_signed_again() -> None:
    ours, kept = os.urandom(32), os.urandom(32)
    signed: list[tuple[str, bytes]] = []

    def sign(kid: str, data: bytes) -> bytes:
        signed.append((kid, data))
        return b"new-signature"

    again = reescrow(delivery(escrowed(ours)), old=ours, new=kept, sign=sign)
    assert again is not None
    headers = {k: v.decode() for k, v in again.headers}
    assert [k for k, _ in again.headers] == sorted(headers)
    blob = crypto.b64d(headers["ce_hubescrow"], what="ce_hubescrow")
    assert AESGCM(kept).decrypt(blob[:12], blob[12:], _AAD + b"dek-1") == CASE_KEY
    assert headers["ce_hubsig"] == crypto.b64e(b"new-signature")
    # signed by the key the record names, over what a recipient checks
    assert signed == [("hub-sig-1", crypto.signing_input(headers, b"CASE-1", b"ciphertext"))]
    assert (again.topic, again.key, again.value) == ("hub.out.police", b"CASE-1", b"ciphertext")


def test_a_delivery_escrowed_under_another_key_or_none_is_left_alone() -> None:
    ours, kept = os.urandom(32), os.urandom(32)

    def sign(_kid: str, _data: bytes) -> bytes:
        raise AssertionError("nothing to sign again")

    assert reescrow(delivery(escrowed(os.urandom(32))), old=ours, new=kept, sign=sign) is None
    assert reescrow(delivery(None), old=ours, new=kept, sign=sign) is None
