"""The envelope: round trips for every suite, and every way a record can be tampered with."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.envelope import crypto
from hub.envelope.sealing import _AAD_HEADERS, context_aad, open_record, seal_record
from hub.models import EventAttributes

T0 = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)


@dataclass
class Identity:
    party: str
    kid: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)


@dataclass
class Directory:
    keys: dict[str, tuple[str, Ed25519PublicKey, bool]] = field(default_factory=dict)

    def add(self, ident: Identity, *, revoked: bool = False) -> None:
        self.keys[ident.kid] = (ident.party, ident.key.public_key(), revoked)

    def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
        return self.keys[kid]


def encryption_key(suite: str) -> Any:
    if suite == "x25519":
        return x25519.X25519PrivateKey.generate()
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    )


def attrs(event_id: str = "ev-1") -> EventAttributes:
    return EventAttributes(
        id=event_id,
        source="/parties/marac.north-worcs",
        type="uk.csp.marac.flag.raised.v1",
        time=T0,
        subject="CASE-7",
    )


def sealed(
    suite: str = "x25519",
    *,
    cache: crypto.DataKeyCache | None = None,
    recipient: str = "redditch-bc.housing-repairs",
) -> tuple[Any, Any, Identity, Directory]:
    sender = Identity("marac.north-worcs", "marac.north-worcs#sig1")
    directory = Directory()
    directory.add(sender)
    sk = encryption_key(suite)
    record = seal_record(
        attrs(),
        key=b"CASE-7",
        plaintext=b'{"risk_level":"high"}',
        recipient=recipient,
        recipient_kid=f"{recipient}#enc1",
        suite=suite,
        recipient_public=sk.public_key(),
        cache=cache or crypto.DataKeyCache(),
        signer=sender,
        extensions={"hubprotocol": "sha256:abc"},
    )
    return record, sk, sender, directory


def open_it(
    record: Any,
    sk: Any,
    directory: Directory,
    *,
    recipient: str = "redditch-bc.housing-repairs",
    key: bytes | None = b"CASE-7",
    headers: dict[str, str] | None = None,
    value: bytes | None = None,
) -> bytes:
    hdrs = headers or {k: v.decode() for k, v in record.headers}

    def hpke_open(kid: str, ciphertext: bytes, info: bytes) -> bytes:
        if kid != f"{recipient}#enc1":
            raise KeyError(kid)
        return crypto.SUITES[hdrs["ce_hubsuite"]].decrypt(ciphertext, sk, info)

    opened = open_record(
        hdrs,
        key=key,
        value=value if value is not None else record.value,
        recipient=recipient,
        directory=directory,
        hpke_open=hpke_open,
        expected_signer="marac.north-worcs",
    )
    return opened.plaintext


@pytest.mark.parametrize("suite", sorted(crypto.SUITES))
def test_round_trip_every_suite(suite: str) -> None:
    record, sk, _sender, directory = sealed(suite)
    assert open_it(record, sk, directory) == b'{"risk_level":"high"}'
    assert b"risk_level" not in record.value


def test_wrong_recipient_cannot_read() -> None:
    record, _sk, _sender, directory = sealed()
    other = encryption_key("x25519")
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, other, directory, recipient="bromsgrove-dc.housing")
    assert err.value.reason == "not_for_recipient"
    # even with the header rewritten to claim it is theirs, the HPKE wrap does not open
    hdrs = {k: v.decode() for k, v in record.headers}
    with pytest.raises(crypto.CryptoError):
        open_it(record, other, directory, headers=hdrs)


@pytest.mark.parametrize(
    "header",
    [
        "ce_id",
        "ce_type",
        "ce_hubrecipient",
        "ce_hubprotocol",
        "ce_subject",
        "ce_source",
        "ce_hubdekid",
    ],
)
def test_tampered_header_fails(header: str) -> None:
    record, sk, _sender, directory = sealed()
    hdrs = {k: v.decode() for k, v in record.headers}
    hdrs[header] = hdrs[header] + "x"
    with pytest.raises(crypto.CryptoError):
        open_it(record, sk, directory, headers=hdrs)


def test_tampered_ciphertext_and_key_fail() -> None:
    record, sk, _sender, directory = sealed()
    flipped = bytearray(record.value)
    flipped[-1] ^= 1
    with pytest.raises(crypto.CryptoError, match="signature"):
        open_it(record, sk, directory, value=bytes(flipped))
    with pytest.raises(crypto.CryptoError):
        open_it(record, sk, directory, key=b"CASE-8")


def test_moving_a_ciphertext_to_another_record_fails_even_when_resigned() -> None:
    """An attacker holding a signing key still cannot move a payload to another event."""
    record, sk, sender, directory = sealed()
    hdrs = {k: v.decode() for k, v in record.headers}
    hdrs["ce_id"] = "ev-2"
    hdrs["ce_hubsig"] = crypto.b64e(
        sender.sign(crypto.signing_input(hdrs, b"CASE-7", record.value))
    )
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, sk, directory, headers=hdrs)
    assert err.value.reason == "bad_ciphertext"


def test_unknown_revoked_and_wrong_signer() -> None:
    record, sk, sender, _directory = sealed()
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, sk, Directory())
    assert err.value.reason == "unknown_key"
    revoked = Directory()
    revoked.add(sender, revoked=True)
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, sk, revoked)
    assert err.value.reason == "revoked_key"
    impostor = Directory()
    impostor.keys[sender.kid] = ("west-mercia-police", sender.key.public_key(), False)
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, sk, impostor)
    assert err.value.reason == "wrong_signer"


def test_unsigned_record_is_refused() -> None:
    record, sk, _sender, directory = sealed()
    hdrs = {k: v.decode() for k, v in record.headers if k != "ce_hubsig"}
    with pytest.raises(crypto.CryptoError) as err:
        open_it(record, sk, directory, headers=hdrs)
    assert err.value.reason == "unsigned"


def test_data_keys_are_reused_within_an_epoch_and_rotated_by_count_and_time() -> None:
    now = [0.0]
    cache = crypto.DataKeyCache(max_uses=3, max_age=60.0, clock=lambda: now[0])
    pub = x25519.X25519PrivateKey.generate().public_key()
    ids = [
        cache.get(recipient="a", kid="a#1", suite="x25519", public_key=pub).dek_id for _ in range(7)
    ]
    assert len(set(ids)) == 3  # 3 + 3 + 1
    assert (cache.seals, cache.reuses) == (3, 4)
    now[0] = 61.0
    assert cache.get(recipient="a", kid="a#1", suite="x25519", public_key=pub).dek_id != ids[-1]
    rotated = cache.get(recipient="a", kid="a#2", suite="x25519", public_key=pub)
    assert rotated.kid == "a#2"  # a rotated recipient key starts its own epoch


def _hkdf_sha256(ikm: bytes, info: bytes) -> bytes:
    """RFC 5869 from the standard library: an implementation that is not the hub's."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_interoperability_with_an_independent_hpke_implementation() -> None:
    """pyhpke (its own RFC 9180 key schedule) opens what pyca/cryptography sealed."""
    from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey

    record, sk, _sender, _directory = sealed("x25519")
    hdrs = {k: v.decode() for k, v in record.headers}
    wrapped = crypto.b64d(hdrs["ce_hubdek"], what="dek")
    suite = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
    raw = sk.private_bytes_raw()
    skr = KEMKey.from_jwk(
        {
            "kty": "OKP",
            "crv": "X25519",
            "d": crypto.b64e(raw).rstrip("=").replace("+", "-").replace("/", "_"),
            "x": crypto.b64e(sk.public_key().public_bytes_raw())
            .rstrip("=")
            .replace("+", "-")
            .replace("/", "_"),
        }
    )
    enc, ct = wrapped[:32], wrapped[32:]
    ctx = suite.create_recipient_context(
        enc, skr, info=crypto.wrap_info("redditch-bc.housing-repairs", hdrs["ce_hubdekid"])
    )
    epoch_key = ctx.open(ct)
    case_key = _hkdf_sha256(
        epoch_key, b"hub/case/v1\x00" + hdrs["ce_hubdekid"].encode() + b"\x00CASE-7"
    )
    aad = crypto.canonical_context(
        {
            "id": hdrs["ce_id"],
            "source": hdrs["ce_source"],
            "type": hdrs["ce_type"],
            "time": hdrs["ce_time"],
            "subject": hdrs["ce_subject"],
            "recipient": hdrs["ce_hubrecipient"],
            "protocol": hdrs["ce_hubprotocol"],
            "dek": hdrs["ce_hubdekid"],
            "kid": hdrs["ce_hubkid"],
            "key": crypto.b64e(b"CASE-7"),
        }
    )
    plaintext = AESGCM(case_key).decrypt(record.value[:12], record.value[12:], aad)
    assert plaintext == b'{"risk_level":"high"}'


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["ce_id", "ce_source", "ce_type", "ce_hubsig", "content-type", "x-other"])
        | st.text(min_size=1, max_size=12).map(lambda t: "ce_" + t),
        st.text(max_size=40),
        max_size=12,
    ),
    key=st.none() | st.binary(max_size=40),
    value=st.binary(max_size=100),
)
def test_signing_input_is_the_canonical_json_of_what_it_covers(
    headers: dict[str, str], key: bytes | None, value: bytes
) -> None:
    # the string-header path is written out by hand: it must be canonical_context's bytes
    # for any text, escapes and non-ASCII included
    covered = {k: v for k, v in headers.items() if (k.startswith("ce_") or k == "content-type")}
    covered.pop("ce_hubsig", None)
    expected = crypto.canonical_context(
        {
            "headers": covered,
            "key": crypto.b64e(key) if key is not None else None,
            "value_sha256": hashlib.sha256(value).hexdigest(),
        }
    )
    assert crypto.signing_input(headers, key, value) == expected
    # again, the covered names now kept for this shape; and with values that are not text
    assert crypto.signing_input(headers, key, value) == expected
    numbers: dict[str, Any] = {k: len(v) for k, v in headers.items()}
    assert crypto.signing_input(numbers, key, value) == crypto.canonical_context(
        {
            "headers": {k: len(v) for k, v in covered.items()},
            "key": crypto.b64e(key) if key is not None else None,
            "value_sha256": hashlib.sha256(value).hexdigest(),
        }
    )


_AAD_NAMES = [*_AAD_HEADERS, "ce_other"]  # the headers bound, and one that is not


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(st.sampled_from(_AAD_NAMES), st.text(max_size=30), max_size=10),
    key=st.none() | st.binary(max_size=40),
)
def test_context_aad_is_the_canonical_json_of_the_fields_it_binds(
    headers: dict[str, str], key: bytes | None
) -> None:
    # written out by hand for text headers: it must be canonical_context's bytes for any
    # text, escapes and non-ASCII included, and an absent header is null
    names = {
        "id": "ce_id",
        "source": "ce_source",
        "type": "ce_type",
        "time": "ce_time",
        "subject": "ce_subject",
        "recipient": "ce_hubrecipient",
        "protocol": "ce_hubprotocol",
        "dek": "ce_hubdekid",
        "kid": "ce_hubkid",
    }
    expected = crypto.canonical_context(
        {field: headers.get(header) for field, header in names.items()}
        | {"key": crypto.b64e(key) if key is not None else None}
    )
    assert context_aad(headers, key) == expected


def _answered_not_kept(headers: dict[str, str]) -> None:
    """``signing_input`` gives the reference bytes for ``headers``, twice, and keeps nothing."""
    first = crypto.signing_input(headers, None, b"")
    assert tuple(headers) not in crypto._covered_by_shape
    covered = {k: v for k, v in headers.items() if k.startswith("ce_")}
    want = {"headers": covered, "key": None, "value_sha256": hashlib.sha256(b"").hexdigest()}
    assert crypto.signing_input(headers, None, b"") == first == crypto.canonical_context(want)


def test_signing_input_keeps_no_header_names_past_its_bound() -> None:
    # the covered names are kept per set of header names, which are the sender's: a set of
    # long names is answered all the same, and not kept
    headers = {"ce_" + "x" * 5000: "v", "ce_id": "e-1"}
    _answered_not_kept(headers)


def test_signing_input_keeps_no_set_of_many_short_header_names() -> None:
    # the bound is on what a kept set holds, not only on its characters: 700 names of one to
    # four characters come to under 1 KiB of text, but each name is a string object and each
    # covered one a prefix and a tuple (4,000 one-character names: 350 KB a set, 22 MB kept)
    headers = {chr(0x4E00 + i): "" for i in range(600)}
    headers |= {f"ce_{chr(0x4E00 + i)}": "v" for i in range(100)}
    assert sum(map(len, headers)) <= crypto._SHAPE_CHARS_KEPT
    _answered_not_kept(headers)
    # a record's own headers are still kept
    ordinary = {f"ce_hub{name}": "v" for name in ("kid", "dek", "dekid", "sig", "sigkid")}
    ordinary |= {f"ce_{n}": "v" for n in ("id", "source", "type", "time", "specversion")}
    ordinary |= {"content-type": "v", "ce_hubrecipient": "v", "ce_hubsuite": "v"}
    ordinary |= {"ce_hubcontenttype": "v", "ce_hubrule": "v", "ce_hubfields": "v"}
    ordinary |= {"ce_hubprotocol": "v", "ce_hubescrow": "v", "ce_subject": "v"}
    crypto.signing_input(ordinary, None, b"")
    assert tuple(ordinary) in crypto._covered_by_shape
