"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, Ed25519.

A checkpoint commits the hub to the root of its audit Merkle tree at a size. Its format is
the one the transparency-log ecosystem shares (https://c2sp.org/tlog-checkpoint,
https://c2sp.org/signed-note), so a party holding one can check it, and proofs against it,
with Go's ``golang.org/x/mod/sumdb/note`` and ``transparency-dev/merkle`` instead of our
code::

    north-worcestershire-csp.hub/audit
    42
    <base64 RFC 9162 root hash>

    — north-worcestershire-csp.hub/audit <base64(4-byte key ID || 64-byte Ed25519 signature)>

The key name is the origin (tlog-checkpoint: "the log's key name ... SHOULD match the origin
line"). Verifiers are configured with a verifier key ``<name>+<8 hex key ID>+<base64(0x01 ||
public key)>``, the sumdb/note encoding.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hub.audit.merkle import HASH_SIZE
from hub.errors import AuditIntegrityError, ConfigError
from hub.settings import HubSettings

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "load_log_key",
    "log_origin",
    "log_signer",
]

#: signed-note signature type for Ed25519 (c2sp.org/signed-note, "Signature types")
_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "  # em dash, space
_KEY_FILE = Path("keys") / "log-signing.key"
#: signed-note: verifiers MUST accept at least 16 signatures; more is refused as abuse
_MAX_SIGNATURES = 16


def _key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4] (c2sp.org/signed-note)."""
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    # signed-note: key names are non-empty with no Unicode spaces and no '+'.
    if not name or "+" in name or any(c.isspace() for c in name):
        raise ConfigError(f"note key name: expected no spaces or '+', got {name!r}")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the three mandatory lines of c2sp.org/tlog-checkpoint."""

    origin: str
    size: int
    root_hash: bytes

    def body(self) -> str:
        """The note text: origin, decimal size, base64 root, each newline-terminated."""
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.size}\n{root}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a verified note text; extension lines are refused (we never sign any).

        Raises:
            AuditIntegrityError: the text is not a checkpoint body.
        """
        lines = body.split("\n")
        if len(lines) != 4 or lines[3] != "":
            raise AuditIntegrityError(
                f"checkpoint: expected 3 newline-terminated lines, got {body!r}"
            )
        origin, size_text, root_text = lines[:3]
        # tlog-checkpoint: decimal, no leading zeroes unless the tree is empty.
        if not origin or not size_text.isascii() or not size_text.isdigit():
            raise AuditIntegrityError(f"checkpoint: expected origin and size, got {body!r}")
        if size_text != str(int(size_text)):
            raise AuditIntegrityError(
                f"checkpoint size: expected no leading zeroes, got {size_text}"
            )
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise AuditIntegrityError(
                f"checkpoint root: expected base64, got {root_text!r}"
            ) from exc
        if len(root) != HASH_SIZE:
            raise AuditIntegrityError(
                f"checkpoint root: expected {HASH_SIZE} bytes, got {len(root)}"
            )
        return cls(origin=origin, size=int(size_text), root_hash=root)


class NoteSigner:
    """Signs note texts with one Ed25519 key under one key name (c2sp.org/signed-note)."""

    def __init__(self, name: str, key: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = key
        self._public = _raw_public(key.public_key())
        self.key_id = _key_id(name, self._public)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"

    @property
    def verifier_key(self) -> str:
        """``<name>+<hex key ID>+<base64(0x01 || public key)>``, to hand to verifiers."""
        encoded = base64.b64encode(_ED25519 + self._public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verifier(self) -> NoteVerifier:
        """The verifier for this signer's notes."""
        return NoteVerifier.from_key(self.verifier_key)

    def sign(self, text: str) -> str:
        """The signed note: text, blank line, one signature line.

        Raises:
            AuditIntegrityError: the text is empty, lacks its final newline or holds control
                characters, which signed-note forbids.
        """
        _check_text(text)
        signature = self._key.sign(text.encode())
        encoded = base64.b64encode(self.key_id + signature).decode()
        return f"{text}\n{_SIG_PREFIX}{self.name} {encoded}\n"


class NoteVerifier:
    """Checks notes signed by one known Ed25519 key (c2sp.org/signed-note)."""

    def __init__(self, name: str, key_id: bytes, public_key: Ed25519PublicKey) -> None:
        _check_name(name)
        self.name = name
        self.key_id = key_id
        self._public = public_key

    def __repr__(self) -> str:
        return f"NoteVerifier({self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def from_key(cls, verifier_key: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

        Raises:
            ConfigError: malformed key, unknown algorithm, or a key ID that does not match.
        """
        parts = verifier_key.split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise ConfigError("verifier key: expected <name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        try:
            key_id = bytes.fromhex(id_hex)
            raw = base64.b64decode(key_b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"verifier key {name}: expected hex id and base64 key") from exc
        if len(key_id) != 4 or len(raw) != 33 or raw[:1] != _ED25519:
            raise ConfigError(
                f"verifier key {name}: expected a 4-byte id and an Ed25519 (0x01) key"
            )
        if _key_id(name, raw[1:]) != key_id:
            raise ConfigError(f"verifier key {name}: key id {id_hex} does not match the key")
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]))

    def open(self, note: str) -> str:
        """Return the note text once a signature by this key verifies.

        Signatures by other keys are ignored, as signed-note requires (witness cosignatures,
        key rotation); a signature that claims to be ours but does not verify rejects the
        whole note.

        Raises:
            AuditIntegrityError: malformed note, no signature by this key, or a bad one.
        """
        text, signatures = _split_note(note)
        found = False
        for name, blob in signatures:
            if name != self.name or blob[:4] != self.key_id:
                continue
            try:
                self._public.verify(blob[4:], text.encode())
            except InvalidSignature as exc:
                raise AuditIntegrityError(
                    f"signed note: signature by {self.name} does not verify"
                ) from exc
            found = True
        if not found:
            raise AuditIntegrityError(f"signed note: expected a signature by {self.name}, got none")
        return text

    def open_checkpoint(self, note: str, *, origin: str | None = None) -> Checkpoint:
        """Verify a checkpoint note and parse its body; check the origin if given.

        Raises:
            AuditIntegrityError: bad signature, bad body or another log's origin.
        """
        checkpoint = Checkpoint.parse(self.open(note))
        expected = self.name if origin is None else origin
        if checkpoint.origin != expected:
            raise AuditIntegrityError(
                f"checkpoint origin: expected {expected}, got {checkpoint.origin}"
            )
        return checkpoint


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(c < " " and c != "\n" for c in text):
        raise AuditIntegrityError(
            "note text: expected newline-terminated text without control characters"
        )


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Note text (with final newline) and the (key name, decoded signature) pairs."""
    _check_text(note)
    # signed-note: the text is separated from the signatures by the last empty line.
    cut = note.rfind("\n\n")
    if cut < 0:
        raise AuditIntegrityError("signed note: expected a blank line before the signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise AuditIntegrityError(
            f"signed note: expected 1..{_MAX_SIGNATURES} signature lines, got {len(lines)}"
        )
    signatures: list[tuple[str, bytes]] = []
    for line in lines:
        name, _, encoded = line.removeprefix(_SIG_PREFIX).partition(" ")
        if not line.startswith(_SIG_PREFIX) or not name or " " in encoded:
            raise AuditIntegrityError(f"signed note: malformed signature line {line!r}")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise AuditIntegrityError(f"signed note: signature of {name} is not base64") from exc
        if len(blob) < 5:
            raise AuditIntegrityError(f"signed note: signature of {name} is too short")
        signatures.append((name, blob))
    return text, signatures


def log_origin(settings: HubSettings) -> str:
    """The log's origin and key name: ``<protocol id>.hub/audit``.

    One partnership, one protocol id, one log, so two partnerships' checkpoints can never be
    confused (tlog-checkpoint: the origin identifies the log).
    """
    from hub.policies.loader import load_protocol  # the protocol layer is heavy to import

    return f"{load_protocol(settings.protocol).protocol.id}.hub/audit"


def load_log_key(settings: HubSettings, *, create: bool = False) -> Ed25519PrivateKey:
    """The hub's checkpoint signing key, ``<data_dir>/keys/log-signing.key`` (PEM, 0600).

    Only a writer creates it (``create=True``: the audit sink, which signs checkpoints, when
    the hub starts); every read (``hub audit log-key``, ``verify``, ``proof``, the console)
    loads it and refuses when it is missing. A read that created one would hand out a new,
    valid-looking verifier key that matches no checkpoint the hub ever signed, and a party
    pinning it would verify nothing. The only place that knows where the key lives, so a
    KeyStore can take it over later. Losing it does not lose the log (every record and
    checkpoint stays verifiable with the old public key), but new checkpoints are then
    signed by a new key that every party must be told about.

    Raises:
        ConfigError: no key file (and not ``create``), the file cannot be read or created,
            or it does not hold an Ed25519 key.
    """
    path = settings.data_dir / _KEY_FILE
    try:
        if not path.exists():
            if not create:
                raise ConfigError(
                    f"log signing key {path}: expected the hub's key, got no such file: no "
                    f"hub has run with this HUB_DATA_DIR ({settings.data_dir}); only the "
                    f"running hub creates this key"
                )
            _create_key_file(path)
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"log signing key {path}: cannot read or create: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"log signing key {path}: expected a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"log signing key {path}: expected Ed25519, got {type(key).__name__}")
    return key


def log_signer(settings: HubSettings, *, create: bool = False) -> NoteSigner:
    """The checkpoint signer of this hub: its log key under its origin.

    ``create`` only for the writer that signs checkpoints (see ``load_log_key``).
    """
    return NoteSigner(log_origin(settings), load_log_key(settings, create=create))


def _create_key_file(path: Path) -> None:
    """Write a new key atomically; if another process won the race, keep its key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # mkstemp creates the file 0600; link() refuses to overwrite, so hub processes starting
    # together cannot end up signing with different keys.
    fd, tmp = tempfile.mkstemp(prefix=".log-signing-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
