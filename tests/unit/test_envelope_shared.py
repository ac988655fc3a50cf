"""``seal_record`` shares work across an event's recipients: the bytes stay the reference's.

``seal_record`` renders the attribute headers once per event and writes the context AAD and
the signing input out from pre-encoded pieces. Whatever the attribute and extension values
(quotes, backslashes, non-ASCII, no subject, no Kafka key) and whatever the order of events
and recipients, every record must be byte for byte what the reference construction gives:
``wire.to_headers``, ``sealing.context_aad`` and ``crypto.signing_input`` (the functions
``open_record`` and the byte-exact vectors use).
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
from typing import Any

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.envelope import crypto, wire
from hub.envelope.sealing import context_aad, seal_record
from hub.models import EventAttributes

SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = x25519.X25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
NONCE = b"\x07" * 12
T0 = dt.datetime(2026, 11, 23, 9, 30, 1, 250000, tzinfo=dt.UTC)


class Signer:
    kid = "hub#0123456789abcdef"

    def sign(self, data: bytes) -> bytes:
        return SIGNER.sign(data)


def data_key(recipient: str, n: int) -> crypto.DataKey:
    return crypto.DataKey(
        dek_id=f"dek-{n}",
        key=bytes([n]) * 32,
        wrapped=b"wrapped" + bytes([n]),
        recipient=recipient,
        kid=f"{recipient}#x25519:{n:016x}",
        suite="x25519",
        created=0.0,
    )


def reference(
    attrs: EventAttributes,
    *,
    key: bytes | None,
    plaintext: bytes,
    dk: crypto.DataKey,
    extensions: dict[str, str],
    escrowed: str | None,
) -> tuple[list[tuple[str, bytes]], bytes]:
    """The construction as written before the shared-work path (the module docstrings')."""
    ext = dict(extensions)
    ext.update(
        hubrecipient=dk.recipient,
        hubkid=dk.kid,
        hubsuite=dk.suite,
        hubdekid=dk.dek_id,
        hubdek=crypto.b64e(dk.wrapped),
        hubsigkid=Signer.kid,
    )
    ck = crypto.case_key_reference(dk.key, dek_id=dk.dek_id, kafka_key=key)
    if escrowed is not None:
        ext["hubescrow"] = escrowed
    text = {k: v.decode() for k, v in wire.to_headers(attrs, ext)}
    value = NONCE + AESGCM(ck).encrypt(NONCE, plaintext, context_aad(text, key))
    text["ce_hubsig"] = crypto.b64e(SIGNER.sign(crypto.signing_input(text, key, value)))
    return sorted((k, v.encode()) for k, v in text.items()), value


def seal(attrs: EventAttributes, dk: crypto.DataKey, **kwargs: Any) -> tuple[Any, Any]:
    escrowed = kwargs.pop("escrowed")
    record = seal_record(
        attrs,
        recipient=dk.recipient,
        recipient_kid=dk.kid,
        suite=dk.suite,
        recipient_public=PUBLIC,
        cache=crypto.DataKeyCache(),
        signer=Signer(),
        escrow=(lambda _ck, _dek: escrowed),
        data_key=dk,
        nonce=NONCE,
        **kwargs,
    )
    return record.headers, record.value


text = st.text(min_size=1, max_size=40).filter(lambda s: not any(ord(c) < 32 for c in s))


@settings(max_examples=60, deadline=None)
@given(
    event_ids=st.lists(st.sampled_from(["ev-1", "ev-2", 'ev-"3"']), min_size=1, max_size=4),
    subject=st.none() | text,
    key=st.none() | st.binary(min_size=1, max_size=20),
    rule=st.just("") | text,
    fields=text,
    recipients=st.integers(min_value=1, max_value=5),
    escrowed=st.none() | text,
)
def test_every_delivery_is_byte_for_byte_the_reference(
    event_ids: list[str],
    subject: str | None,
    key: bytes | None,
    rule: str,
    fields: str,
    recipients: int,
    escrowed: str | None,
) -> None:
    for event_id in event_ids:  # events back to back, and the same event again
        for n in range(recipients):
            # a new attributes object per recipient, as the router builds them
            attrs = EventAttributes(
                id=event_id,
                source="/parties/west-mercia-police",
                type="uk.csp.socjag.intel.v1",
                time=T0,
                subject=subject,
                datacontenttype=wire.JSON,
            )
            extensions = {"hubprotocol": "sha256:ab", "hubrule": rule, "hubfields": fields}
            dk = data_key(f"agency-{n:02d}", n + 1)
            plaintext = os.urandom(n + 10)
            got = seal(
                attrs,
                dk,
                key=key,
                plaintext=plaintext,
                extensions=extensions,
                escrowed=escrowed,
            )
            want = reference(
                attrs,
                key=key,
                plaintext=plaintext,
                dk=dk,
                extensions=extensions,
                escrowed=escrowed,
            )
            assert got == want


@settings(max_examples=100, deadline=None)
@given(
    epoch=st.binary(min_size=32, max_size=32),
    dek_id=st.text(max_size=20),
    key=st.none() | st.binary(max_size=64),
)
def test_case_key_is_rfc5869_hkdf(epoch: bytes, dek_id: str, key: bytes | None) -> None:
    assert crypto.case_key(epoch, dek_id=dek_id, kafka_key=key) == crypto.case_key_reference(
        epoch, dek_id=dek_id, kafka_key=key
    )


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(max_size=150),  # shorter than, as long as, and longer than a SHA-256 block
    messages=st.lists(st.binary(max_size=200), min_size=1, max_size=3),
)
def test_hmac_with_the_key_set_up_once_is_rfc2104(key: bytes, messages: list[bytes]) -> None:
    mac = crypto.HmacSha256(key)
    for message in messages:  # the same key, several messages: each its own HMAC
        assert mac.digest(message) == hmac.digest(key, message, "sha256")


@settings(max_examples=100, deadline=None)
@given(
    epoch=st.binary(min_size=32, max_size=32),
    cases=st.lists(st.tuples(st.text(max_size=20), st.none() | st.binary(max_size=64)), max_size=3),
)
def test_an_epochs_case_keys_are_rfc5869_hkdf(
    epoch: bytes, cases: list[tuple[str, bytes | None]]
) -> None:
    expander = crypto.CaseKeyExpander(epoch)
    dk = data_key("agency-01", 1)
    dk.key = epoch
    for dek_id, key in cases:
        want = crypto.case_key_reference(epoch, dek_id=dek_id, kafka_key=key)
        assert expander.case_key(dek_id=dek_id, kafka_key=key) == want
        assert dk.case_key(key) == crypto.case_key_reference(epoch, dek_id=dk.dek_id, kafka_key=key)


def test_an_extension_named_like_an_attribute_takes_the_sdks_path() -> None:
    attrs = EventAttributes(
        id="ev-9", source="/parties/p", type="t.v1", time=T0, datacontenttype=wire.JSON
    )
    dk = data_key("agency-01", 1)
    for _ in range(2):  # the second time too: such a name set is never taken as checked
        headers, _value = seal(
            attrs, dk, key=None, plaintext=b"{}", extensions={"subject": "S"}, escrowed=None
        )
        assert dict(headers)["ce_subject"] == b"S"
        assert "ce_ce_subject" not in dict(headers)
