"""Write the byte-exact envelope vectors in tests/vectors/envelope/v1 and v2 from fixed inputs.

One record per HPKE suite and envelope version. Version 2 (what the hub writes) is sealed by
the hub's own ``seal_record``. Version 1 is the same record as v1 labelled it: ``content-type``
the payload's type instead of ``application/vnd.uk-csp.hub.sealed.v2``, no
``ce_hubcontenttype``, and so its own signature; the value is the same bytes (the AAD never
covered ``content-type``). Readers accept both; ``docs/envelope.md`` is the specification.

Every key, id, time, data key, nonce and plaintext is fixed, so everything the envelope
computes deterministically is byte-exact: the headers, the context AAD, the HKDF case key,
the AES-256-GCM value, the canonical signing input and the Ed25519 signature (RFC 8032
signatures are deterministic). The one randomised step is the HPKE seal of the epoch data key
(pyca/cryptography draws a fresh ephemeral key): the vector records that ciphertext, which
must open to the recorded data key with the recorded private key, and ``ce_hubdek`` (so the
signature) depends on it. To stay reproducible the script *reuses* the HPKE ciphertext of
the existing vector when it still opens to the same data key under the same ``info``;
change the format (the wrap info, a key) and a fresh one is drawn, so the files differ and
the check fails until the vectors are rebuilt on purpose.

Rebuild with ``make vectors`` (``.venv/bin/python scripts/make_envelope_vectors.py``) and
review ``git diff tests/vectors/envelope``; ``tests/unit/test_envelope_vectors.py``
regenerates them into a temporary directory and compares, and opens every vector.

THE KEYS HERE ARE PUBLISHED TEST-ONLY KEYS, derived from fixed labels: never use them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.envelope import crypto, wire
from hub.envelope.sealing import context_aad, seal_record
from hub.keys.model import KeySuite, key_id
from hub.models import EventAttributes

__all__ = ["DEFAULT_OUT", "build", "main", "private_key", "write_vectors"]

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "envelope"
#: the vector file format per envelope version
FORMATS = {1: "hub.envelope.vector.v1", 2: "hub.envelope.vector.v2"}
WARNING = "TEST-ONLY KEYS: published in this repository; never use them for real data"
SENDER = "marac.north-worcs"
RECIPIENT = "hub"


def _fixed(label: str, size: int) -> bytes:
    """Deterministic test bytes: SHA-512 of a label, truncated (never a real secret)."""
    return hashlib.sha512(f"hub envelope test vector: {label}".encode()).digest()[:size]


def private_key(suite: KeySuite, raw: bytes) -> Any:
    """The HPKE private key object from its raw form (X25519, or ML-KEM seed || X25519)."""
    if suite is KeySuite.X25519:
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
        x25519.X25519PrivateKey.from_private_bytes(raw[64:]),
    )


def _recipient_key(suite: KeySuite) -> tuple[bytes, bytes]:
    """(raw private, raw public) of the fixed recipient key of ``suite``."""
    x = x25519.X25519PrivateKey.from_private_bytes(_fixed(f"{suite.value} x25519", 32))
    x_public = x.public_key().public_bytes_raw()
    if suite is KeySuite.X25519:
        return x.private_bytes_raw(), x_public
    seed = _fixed(f"{suite.value} ml-kem-768 seed", 64)
    m = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    return seed + x.private_bytes_raw(), m.public_key().public_bytes_raw() + x_public


class _Signer:
    def __init__(self, key: Ed25519PrivateKey, kid: str) -> None:
        self._key = key
        self.kid = kid

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def _previous_wrap(previous: dict[str, Any] | None, suite: KeySuite, epoch: bytes) -> bytes | None:
    """The recorded HPKE ciphertext, if it still opens to ``epoch`` with the fixed key."""
    if previous is None:
        return None
    try:
        wrapped = bytes.fromhex(previous["hpke"]["ciphertext_hex"])
        info = bytes.fromhex(previous["derived"]["wrap_info_hex"])
        raw, _ = _recipient_key(suite)
        opened = suite.hpke_suite().decrypt(wrapped, private_key(suite, raw), info)
    except (KeyError, ValueError, TypeError):
        return None
    except Exception:
        return None
    return wrapped if opened == epoch else None


def _as_v1(
    headers: list[tuple[str, str]], key: bytes, value: bytes, signer: _Signer
) -> list[tuple[str, str]]:
    """The record as envelope v1 labelled it: the payload's type as ``content-type``."""
    fields = dict(headers)
    inner = fields.pop("ce_" + wire.INNER_TYPE)
    if fields["content-type"] != wire.SEALED:
        raise ValueError(f"content-type: expected {wire.SEALED}, got {fields['content-type']}")
    fields["content-type"] = inner
    del fields["ce_hubsig"]
    fields["ce_hubsig"] = crypto.b64e(signer.sign(crypto.signing_input(fields, key, value)))
    return sorted(fields.items())


def build(
    suite: KeySuite, previous: dict[str, Any] | None = None, *, version: int = 2
) -> dict[str, Any]:
    """One vector: a MARAC flag sealed by ``marac.north-worcs`` to the hub under ``suite``."""
    signer_key = Ed25519PrivateKey.from_private_bytes(_fixed("ed25519 sender", 32))
    signer_public = signer_key.public_key().public_bytes_raw()
    signing_kid = key_id(SENDER, signer_public)
    hpke_private, hpke_public = _recipient_key(suite)
    recipient_kid = key_id(RECIPIENT, hpke_public, suite=suite)

    epoch = _fixed(f"{suite.value} epoch data key", 32)
    dek_id = "dGVzdC12ZWN0b3Ix"  # what DataKeyCache makes: URL-safe base64 of 12 bytes
    nonce = _fixed(f"{suite.value} gcm nonce", 12)
    info = crypto.wrap_info(RECIPIENT, dek_id)
    wrapped = _previous_wrap(previous, suite, epoch) or suite.hpke_suite().encrypt(
        epoch, suite.public_from_bytes(hpke_public), info
    )
    data_key = crypto.DataKey(
        dek_id=dek_id,
        key=epoch,
        wrapped=wrapped,
        recipient=RECIPIENT,
        kid=recipient_kid,
        suite=suite.value,
        created=0.0,
    )
    attrs = EventAttributes(
        id="018f3a2e-7b1c-7d4e-8f00-000000000001",
        source=wire.source_for(SENDER),
        type="uk.csp.marac.flag.raised.v1",
        time=dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC),
        subject="MARAC-NW-2026-0001",
        datacontenttype=wire.JSON,
    )
    kafka_key = b"MARAC-NW-2026-0001"
    plaintext = wire.canonical_json(
        {"case_ref": "MARAC-NW-2026-0001", "risk_level": "high", "markers": ["dv-victim"]}
    )
    signer = _Signer(signer_key, signing_kid)
    sealed = seal_record(
        attrs,
        key=kafka_key,
        plaintext=plaintext,
        recipient=RECIPIENT,
        recipient_kid=recipient_kid,
        suite=suite.value,
        recipient_public=suite.public_from_bytes(hpke_public),
        cache=crypto.DataKeyCache(),
        signer=signer,
        extensions={"hubprotocol": "sha256:" + "00" * 32},
        data_key=data_key,
        nonce=nonce,
    )
    record_headers = [(k, v.decode()) for k, v in sealed.headers]
    if version == 1:
        record_headers = _as_v1(record_headers, kafka_key, sealed.value, signer)
    headers = dict(record_headers)
    case = crypto.case_key(epoch, dek_id=dek_id, kafka_key=kafka_key)
    aad = context_aad(headers, kafka_key)
    signing_input = crypto.signing_input(headers, kafka_key, sealed.value)
    return {
        "format": FORMATS[version],
        "warning": WARNING,
        "description": f"a MARAC flag sealed by {SENDER} to {RECIPIENT} with HPKE suite "
        f"{suite.value}{'' if version == 1 else ', envelope v2'}; every value is byte-exact "
        "except hpke.ciphertext_hex (see hpke.note)",
        "suite": suite.value,
        "hpke_suite_ids": {
            "kem_id": "0x0020" if suite is KeySuite.X25519 else "0x647a",
            "kdf_id": "0x0001",
            "aead_id": "0x0002",
            "mode": "base (0x00), single shot, empty aad",
        },
        "keys": {
            "sender": {
                "party": SENDER,
                "signing_key_id": signing_kid,
                "ed25519_private_hex": signer_key.private_bytes_raw().hex(),
                "ed25519_public_hex": signer_public.hex(),
            },
            "recipient": {
                "party": RECIPIENT,
                "encryption_key_id": recipient_kid,
                "hpke_private_hex": hpke_private.hex(),
                "hpke_public_hex": hpke_public.hex(),
                "private_encoding": "32-byte X25519 scalar"
                if suite is KeySuite.X25519
                else "64-byte ML-KEM-768 seed (d || z) then 32-byte X25519 scalar",
            },
        },
        "inputs": {
            "kafka_key_utf8": kafka_key.decode(),
            "plaintext_utf8": plaintext.decode(),
            "epoch_key_hex": epoch.hex(),
            "dek_id": dek_id,
            "nonce_hex": nonce.hex(),
        },
        "derived": {
            "wrap_info_hex": info.hex(),
            "case_key_hex": case.hex(),
            "aad_utf8": aad.decode(),
            "signing_input_utf8": signing_input.decode(),
            "signature_hex": crypto.b64d(headers["ce_hubsig"], what="ce_hubsig").hex(),
        },
        "hpke": {
            "ciphertext_hex": wrapped.hex(),
            "note": "HPKE seal is randomised: this enc || ct is not reproducible, but must "
            "open with recipient.hpke_private_hex and derived.wrap_info_hex to "
            "inputs.epoch_key_hex; ce_hubdek is its base64",
        },
        "record": {
            "headers": [[k, v] for k, v in record_headers],
            "key_hex": kafka_key.hex(),
            "value_hex": sealed.value.hex(),
        },
    }


def render(vector: dict[str, Any]) -> str:
    """Stable JSON text: indented, keys in insertion order, one final newline."""
    return json.dumps(vector, indent=2, ensure_ascii=False) + "\n"


def write_vectors(out: Path, *, reuse_from: Path | None = None) -> list[Path]:
    """Write ``out/v<version>/<suite>.json``; reuse HPKE ciphertexts from ``reuse_from``.

    A version without a file yet reuses the other version's ciphertext (the same epoch key
    and wrap info), so v1 and v2 of a suite seal the same bytes.
    """
    source = reuse_from or out
    written = []
    for version in FORMATS:
        (out / f"v{version}").mkdir(parents=True, exist_ok=True)
        for suite in KeySuite:
            name = f"{suite.value}.json"
            candidates = [source / f"v{version}" / name] + [
                source / f"v{other}" / name for other in FORMATS if other != version
            ]
            old = next((c for c in candidates if c.exists()), None)
            previous = json.loads(old.read_text(encoding="utf-8")) if old else None
            path = out / f"v{version}" / name
            path.write_text(render(build(suite, previous, version=version)), encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--out DIR`` (default tests/vectors/envelope), ``--reuse-from DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--reuse-from", type=Path, default=None)
    args = parser.parse_args(argv)
    for path in write_vectors(args.out, reuse_from=args.reuse_from):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
