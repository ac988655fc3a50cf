"""C2SP signed-note / tlog-checkpoint: format, round trip, wrong key, tampering, key file."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, load_log_key
from hub.errors import AuditIntegrityError, ConfigError
from hub.settings import HubSettings

ORIGIN = "north-worcestershire-csp.hub/audit"
ROOT = hashlib.sha256(b"root").digest()


def signer(seed: int = 1) -> NoteSigner:
    return NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def test_body_format() -> None:
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    assert body == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(body) == Checkpoint(ORIGIN, 42, ROOT)


def test_note_format_and_key_id() -> None:
    s = signer()
    note = s.sign(Checkpoint(ORIGIN, 7, ROOT).body())
    _text, sig_line = note.split("\n\n")
    assert sig_line.startswith(f"\u2014 {ORIGIN} ")
    assert sig_line.endswith("\n")
    assert sig_line.count("\n") == 1
    blob = base64.b64decode(sig_line.split(" ")[2])
    assert len(blob) == 4 + 64
    public = (
        Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert blob[:4] == key_id
    name, hex_id, key = s.verifier_key.split("+")
    assert (name, hex_id) == (ORIGIN, key_id.hex())
    assert base64.b64decode(key) == b"\x01" + public


def test_round_trip() -> None:
    s = signer()
    note = s.sign(Checkpoint(ORIGIN, 7, ROOT).body())
    verifier = NoteVerifier.from_key(s.verifier_key)
    assert verifier.open_checkpoint(note) == Checkpoint(ORIGIN, 7, ROOT)


GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFY"
    "C2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_sumdb_example_verifies() -> None:
    # The example of golang.org/x/mod/sumdb/note: another implementation's output.
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    assert NoteVerifier.from_key(vkey).open(GO_NOTE) == GO_TEXT
    with pytest.raises(AuditIntegrityError):
        NoteVerifier.from_key(vkey).open(GO_NOTE.replace("cryptography", "cryptographY"))


def test_go_sumdb_example_signs_byte_for_byte() -> None:
    # skey "PRIVATE+KEY+PeterNeumann+c74f20a3+<base64(0x01 || seed)>"; Ed25519 is
    # deterministic, so our note must equal Go's exactly.
    seed = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
    go_signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert go_signer.key_id.hex() == "c74f20a3"
    assert go_signer.sign(GO_TEXT) == GO_NOTE


def test_wrong_key_fails() -> None:
    note = signer(1).sign(Checkpoint(ORIGIN, 7, ROOT).body())
    with pytest.raises(AuditIntegrityError, match="expected a signature by"):
        NoteVerifier.from_key(signer(2).verifier_key).open(note)


def test_unknown_signatures_are_ignored() -> None:
    body = Checkpoint(ORIGIN, 7, ROOT).body()
    ours = signer(1).sign(body)
    witness = NoteSigner("witness.example/w1", Ed25519PrivateKey.generate()).sign(body)
    cosigned = ours + witness.split("\n\n")[1]
    assert NoteVerifier.from_key(signer(1).verifier_key).open(cosigned) == body


@pytest.mark.parametrize(
    "tamper",
    [
        lambda n: n.replace("\n7\n", "\n8\n"),
        lambda n: n.replace(ORIGIN, "other.hub/audit", 1),
        lambda n: n[:-10] + ("A" if n[-10] != "A" else "B") + n[-9:],
        lambda n: n.replace("\n\n", "\nextra\n\n"),
        lambda n: n.rstrip("\n"),
    ],
)
def test_tampered_note_fails(tamper: object) -> None:
    s = signer()
    note = s.sign(Checkpoint(ORIGIN, 7, ROOT).body())
    assert callable(tamper)
    with pytest.raises(AuditIntegrityError):
        NoteVerifier.from_key(s.verifier_key).open_checkpoint(tamper(note))


def test_other_origin_refused() -> None:
    s = signer()
    note = s.sign(Checkpoint("other.hub/audit", 7, ROOT).body())
    with pytest.raises(AuditIntegrityError, match="origin"):
        s.verifier().open_checkpoint(note)


@pytest.mark.parametrize(
    "body",
    ["a\n07\nAAAA\n", "a\n7\n", "a\n-1\n" + base64.b64encode(ROOT).decode() + "\n", "a\n1\n!!\n"],
)
def test_bad_bodies(body: str) -> None:
    with pytest.raises(AuditIntegrityError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    "vkey", ["no-plus", "a+zz+AAAA", "a+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode()]
)
def test_bad_verifier_keys(vkey: str) -> None:
    with pytest.raises(ConfigError):
        NoteVerifier.from_key(vkey)


def test_load_log_key_creates_once_0600(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path)
    first = load_log_key(settings, create=True)
    path = tmp_path / "keys" / "log-signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert load_log_key(settings).public_key().public_bytes(
        *raw
    ) == first.public_key().public_bytes(*raw)


def test_load_log_key_never_creates_one_on_a_read(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path / "data")
    with pytest.raises(ConfigError, match="got no such file: no hub has run"):
        load_log_key(settings)
    assert not (tmp_path / "data").exists()
    created = load_log_key(settings, create=True)  # the writer's call
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert load_log_key(settings).public_key().public_bytes(
        *raw
    ) == created.public_key().public_bytes(*raw)


def test_load_log_key_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "log-signing.key").write_text("not a key")
    with pytest.raises(ConfigError, match="log signing key"):
        load_log_key(HubSettings(data_dir=tmp_path))
