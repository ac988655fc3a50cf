"""The checked-in envelope vectors: rebuilt byte for byte by the script, opened by the hub.

One per suite and envelope version (``v1/``, ``v2/``): the hub writes v2 and reads both.

A format change (a header, the AAD, the signing input, the case-key derivation) changes the
regenerated files, so this fails until the vectors are rebuilt on purpose (``make vectors``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.envelope import crypto, wire
from hub.envelope.sealing import context_aad, open_record
from hub.keys.model import KeySuite, key_id

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "envelope"
SCRIPT = ROOT / "scripts" / "make_envelope_vectors.py"
FILES = sorted(VECTORS.glob("v*/*.json"))
IDS = [f"{p.parent.name}-{p.stem}" for p in FILES]


def load(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return body


def private_key(suite: KeySuite, raw: bytes) -> Any:
    """The recorded private key, decoded as ``recipient.private_encoding`` says."""
    if suite is KeySuite.X25519:
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
        x25519.X25519PrivateKey.from_private_bytes(raw[64:]),
    )


def test_there_is_a_vector_per_suite_and_version() -> None:
    suites = sorted(s.value for s in KeySuite)
    assert [(p.parent.name, p.stem) for p in FILES] == [
        (v, s) for v in ("v1", "v2") for s in suites
    ]
    assert wire.ENVELOPE_VERSION == 2


@pytest.mark.parametrize("suite", [s.value for s in KeySuite])
def test_v2_labels_the_sealed_value_and_v1_did_not(suite: str) -> None:
    v1, v2 = (load(VECTORS / v / f"{suite}.json") for v in ("v1", "v2"))
    h1, h2 = dict(v1["record"]["headers"]), dict(v2["record"]["headers"])
    assert v2["format"] == "hub.envelope.vector.v2"
    assert h2["content-type"] == "application/vnd.uk-csp.hub.sealed.v2"
    assert h2["ce_hubcontenttype"] == h1["content-type"] == "application/json"
    assert "ce_hubcontenttype" not in h1
    # the same sealed bytes: the AAD does not cover the label; the signature does
    assert v1["record"]["value_hex"] == v2["record"]["value_hex"]
    assert h1["ce_hubsig"] != h2["ce_hubsig"]


def test_regenerating_the_vectors_gives_the_same_bytes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--reuse-from", str(VECTORS)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for path in FILES:
        fresh = tmp_path / path.parent.name / path.name
        assert fresh.read_bytes() == path.read_bytes(), (
            f"{path.parent.name}/{path.name} changed: the envelope format changed; if on "
            "purpose, run `make vectors` and review the diff"
        )


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_vector_opens_with_the_hubs_code(path: Path) -> None:
    vector = load(path)
    assert "TEST-ONLY" in vector["warning"]
    suite = KeySuite(vector["suite"])
    sender, recipient = vector["keys"]["sender"], vector["keys"]["recipient"]
    headers = dict(vector["record"]["headers"])
    key = bytes.fromhex(vector["record"]["key_hex"])
    value = bytes.fromhex(vector["record"]["value_hex"])
    signer_public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sender["ed25519_public_hex"]))
    hpke_public = bytes.fromhex(recipient["hpke_public_hex"])
    # key ids are derived from the public keys, and name the suite
    assert sender["signing_key_id"] == key_id(sender["party"], signer_public.public_bytes_raw())
    assert recipient["encryption_key_id"] == key_id(recipient["party"], hpke_public, suite=suite)
    assert headers["ce_hubkid"] == recipient["encryption_key_id"]
    assert headers["ce_hubsuite"] == suite.value

    private = private_key(suite, bytes.fromhex(recipient["hpke_private_hex"]))

    def hpke_open(kid: str, ciphertext: bytes, info: bytes) -> bytes:
        assert kid == recipient["encryption_key_id"]
        opened: bytes = suite.hpke_suite().decrypt(ciphertext, private, info)
        return opened

    class Directory:
        def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
            assert kid == sender["signing_key_id"]
            return sender["party"], signer_public, False

    opened = open_record(
        headers,
        key=key,
        value=value,
        recipient=recipient["party"],
        directory=Directory(),
        hpke_open=hpke_open,
        expected_signer=sender["party"],
    )
    inputs, derived = vector["inputs"], vector["derived"]
    assert opened.plaintext.decode() == inputs["plaintext_utf8"]
    assert wire.attributes_from_headers(headers).datacontenttype == wire.JSON
    assert opened.case_key.hex() == derived["case_key_hex"]
    # the intermediate values an implementer checks step by step
    dek_id = inputs["dek_id"]
    assert crypto.wrap_info(recipient["party"], dek_id).hex() == derived["wrap_info_hex"]
    wrapped = bytes.fromhex(vector["hpke"]["ciphertext_hex"])
    assert crypto.b64d(headers["ce_hubdek"], what="ce_hubdek") == wrapped
    assert hpke_open(headers["ce_hubkid"], wrapped, bytes.fromhex(derived["wrap_info_hex"])) == (
        bytes.fromhex(inputs["epoch_key_hex"])
    )
    assert context_aad(headers, key).decode() == derived["aad_utf8"]
    assert crypto.signing_input(headers, key, value).decode() == derived["signing_input_utf8"]
    assert value[:12].hex() == inputs["nonce_hex"]
    assert crypto.b64e(bytes.fromhex(derived["signature_hex"])) == headers["ce_hubsig"]
