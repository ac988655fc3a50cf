"""Keyed pseudonyms for subjects and cases, so the audit log can be searched but not read.

The audit log must answer a subject access request ("who received what about this person")
without holding the person's reference in clear. A keyed HMAC-SHA256 (RFC 2104) gives a
stable pseudonym that only a holder of the key can compute from a reference; a plain hash
would let anyone confirm a guessed reference against the log.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from hub.envelope.crypto import HmacSha256
from hub.errors import ConfigError
from hub.settings import HubSettings

__all__ = [
    "KEY_BYTES",
    "Pseudonymiser",
    "create_key_file",
    "decode_key",
    "load_pseudonym_key",
]

#: length of a generated key: the SHA-256 block output size, as RFC 2104 section 3 advises
KEY_BYTES = 32
_KEY_FILE = "pseudonym.key"
_HEX_CHARS = 32  # 128 bits of pseudonym: collisions are negligible at partnership volumes

# Domain separation: the same reference used as a subject and as a case must not yield the
# same pseudonym, or a case lookup could surface a subject's records and vice versa.
_SUBJECT_DOMAIN = b"hub.audit.subject.v1\x00"
_CASE_DOMAIN = b"hub.audit.case.v1\x00"


class Pseudonymiser:
    """Turns subject and case references into keyed pseudonyms.

    References are normalised (surrounding whitespace removed, case folded) first, so the
    same person typed two ways by two agencies still has one pseudonym.
    """

    __slots__ = ("_last_case", "_mac")

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigError(f"pseudonym key: expected at least 16 bytes, got {len(key)}")
        self._mac = HmacSha256(key)  # the key set up once (the router asks per event)
        # the last case reference and its pseudonym: the router asks twice per event (the
        # audit record's case pseudonym, then the case keyring's name for its escrow key);
        # one tuple, replaced whole, so a thread never reads one ref with another's pseudonym
        self._last_case: tuple[str | None, str] = (None, "")

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<hidden>)"  # never put the key in a log or traceback

    def subject(self, ref: str) -> str:
        """The pseudonym of a subject reference: ``ps_`` and 32 hex characters."""
        return "ps_" + self._digest(_SUBJECT_DOMAIN, ref)

    def case(self, ref: str) -> str:
        """The pseudonym of a case reference: ``pc_`` and 32 hex characters."""
        last = self._last_case
        if last[0] == ref:
            return last[1]
        pseudonym = "pc_" + self._digest(_CASE_DOMAIN, ref)
        self._last_case = (ref, pseudonym)
        return pseudonym

    def _digest(self, domain: bytes, ref: str) -> str:
        message = domain + ref.strip().casefold().encode()
        # the same bytes as hmac.new(key, message, "sha256").hexdigest() (RFC 2104), with the
        # key's blocks hashed once (the router pseudonymises several refs per event)
        return self._mac.digest(message).hex()[:_HEX_CHARS]


def load_pseudonym_key(settings: HubSettings, *, create: bool = True) -> bytes:
    """The HMAC key: ``HUB_PSEUDONYM_KEY`` if set, else ``<data_dir>/pseudonym.key``.

    The file is created on first use by a writer (32 random bytes, hex, mode 0600) so a
    development hub works out of the box; every process sharing the data dir then computes
    the same pseudonyms. Losing the key makes past pseudonyms unsearchable, so it is never
    rotated silently. A read (``hub audit query --subject``, ``sar``, ``chronology``) passes
    ``create=False``: a key made up by a read pseudonymises to values nothing was ever
    recorded under, and would then stand as the hub's key for every later writer.

    Raises:
        ConfigError: the configured key or the key file is not valid hex of at least 32
            bytes, the file cannot be read or created, or (``create=False``) there is none.
    """
    if settings.pseudonym_key is not None:
        return _decode(settings.pseudonym_key.get_secret_value(), where="HUB_PSEUDONYM_KEY")
    path = settings.data_dir / _KEY_FILE
    try:
        if not path.exists():
            if not create:
                raise ConfigError(
                    f"pseudonym key {path}: expected the hub's key, got no such file: no hub "
                    f"has run with this HUB_DATA_DIR ({settings.data_dir}), or set "
                    f"HUB_PSEUDONYM_KEY to its key"
                )
            create_key_file(path)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"pseudonym key file {path}: cannot read or create: {exc}") from exc
    return _decode(text, where=str(path))


def _decode(text: str, *, where: str) -> bytes:
    return decode_key(text, where=where, what="pseudonym key")


def decode_key(text: str, *, where: str, what: str) -> bytes:
    """A hex key of at least ``KEY_BYTES`` bytes, from a setting or a key file.

    Raises:
        ConfigError: not hex, or too short. The message names the place and the length
            only: a key must never reach a log.
    """
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ConfigError(f"{what} {where}: expected hex, got non-hex text") from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{what} {where}: expected at least {KEY_BYTES} bytes, got {len(key)}")
    return key


def create_key_file(path: Path) -> None:
    """Write a new key atomically; if another process won the race, keep its key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600; link() refuses to overwrite, so two hub processes
    # starting together cannot end up with different keys or read a half-written file.
    fd, tmp = tempfile.mkstemp(prefix=".pseudonym-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(os.urandom(KEY_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
