"""libsodium's Ed25519 (``hub.envelope.ed25519``) gives cryptography's exact bytes and verdicts.

The router signs with it and verifies with it, so every signature it makes must be the one
OpenSSL would make (Ed25519 is deterministic), and every verdict the one OpenSSL would give
on what an honest signer sends.
"""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.envelope import ed25519

#: RFC 8032 section 7.1, tests 1 and 2: (secret key, public key, message, signature)
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
        "cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d"
        "0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert private.public_key().public_bytes_raw().hex() == public
    made = ed25519.Signer(private).sign(bytes.fromhex(message))
    assert made.hex() == signature
    ed25519.verify(private.public_key(), made, bytes.fromhex(message))


@settings(max_examples=60, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_the_same_signature_as_cryptography_and_each_verifies_the_other(
    seed: bytes, message: bytes
) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    ours = ed25519.Signer(private).sign(message)
    assert ours == private.sign(message)
    private.public_key().verify(ours, message)  # OpenSSL accepts libsodium's
    ed25519.verify(private.public_key(), private.sign(message), message)  # and the reverse


@settings(max_examples=60, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(min_size=1, max_size=512),
    bit=st.integers(min_value=0),
    in_signature=st.booleans(),
)
def test_any_flipped_bit_is_refused_as_cryptography_refuses_it(
    seed: bytes, message: bytes, bit: int, in_signature: bool
) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    signature = private.sign(message)
    target = bytearray(signature if in_signature else message)
    target[(bit // 8) % len(target)] ^= 1 << (bit % 8)
    if in_signature:
        signature = bytes(target)
    else:
        message = bytes(target)
    with pytest.raises(InvalidSignature):
        private.public_key().verify(signature, message)
    with pytest.raises(InvalidSignature):
        ed25519.verify(private.public_key(), signature, message)


def test_another_key_a_short_or_a_long_signature_is_refused() -> None:
    private, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signature = ed25519.Signer(private).sign(b"event")
    for public, sig in (
        (other.public_key(), signature),
        (private.public_key(), signature[:63]),
        (private.public_key(), signature + b"\x00"),
        (private.public_key(), b""),
    ):
        with pytest.raises(InvalidSignature):
            ed25519.verify(public, sig, b"event")
