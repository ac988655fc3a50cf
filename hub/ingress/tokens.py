"""Per-party bearer tokens for the HTTP ingress, stored only as hashes.

A token is 32 random bytes (``secrets.token_urlsafe``) shown once when it is made. The file
``HUB_DATA_DIR/ingress-tokens.json`` (mode 0600, written atomically) keeps its SHA-256, the
party it acts for, a short id for listing and revoking, and when it was made or revoked.
A plain SHA-256 is enough: the secret is 256 bits of randomness, so unlike a password there
is nothing to slow down a guess of (a KDF such as Argon2 protects low-entropy secrets).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.errors import ConfigError
from hub.keys.file_store import write_private_file
from hub.models import PARTY_ID_PATTERN

__all__ = ["TOKEN_FILE", "TOKEN_PREFIX", "IngressToken", "TokenStore"]

TOKEN_FILE = "ingress-tokens.json"  # noqa: S105  # a file name, not a secret
#: tokens start with this, so a leaked one is recognisable (secret scanners, logs)
TOKEN_PREFIX = "hubtok_"  # noqa: S105  # a public marker, not a secret
_FORMAT = "hub.ingress.tokens.v1"


class IngressToken(BaseModel):
    """One token as stored: never the token itself."""

    model_config = ConfigDict(frozen=True)

    token_id: str = Field(pattern=r"^[0-9a-f]{12}$")
    party: str = Field(pattern=PARTY_ID_PATTERN)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    label: str | None = None
    created: dt.datetime
    revoked: dt.datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the token still authenticates."""
        return self.revoked is None


class _TokenFile(BaseModel):
    format: str = _FORMAT
    tokens: list[IngressToken] = Field(default_factory=list)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The ingress tokens of one data dir.

    Re-read when the file changes, so `hub ingress token revoke` takes effect on a running
    ingress from its next request, without a restart.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._by_digest: dict[str, IngressToken] = {}

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> TokenStore:
        """The store at ``<data_dir>/ingress-tokens.json``."""
        return cls(data_dir / TOKEN_FILE)

    def _read(self) -> list[IngressToken]:
        if not self.path.exists():
            return []
        try:
            parsed = _TokenFile.model_validate_json(self.path.read_text())
        except (OSError, ValidationError) as exc:
            raise ConfigError(
                f"ingress token file {self.path}: expected {_FORMAT} JSON, cannot read it ({exc})"
            ) from exc
        if parsed.format != _FORMAT:
            raise ConfigError(
                f"ingress token file {self.path}: expected format {_FORMAT}, got {parsed.format}"
            )
        return parsed.tokens

    def _write(self, tokens: list[IngressToken]) -> None:
        body = _TokenFile(tokens=tokens).model_dump(mode="json")
        write_private_file(self.path, (json.dumps(body, indent=2) + "\n").encode())

    def tokens(self) -> list[IngressToken]:
        """Every token, active and revoked, oldest first."""
        return sorted(self._read(), key=lambda t: t.created)

    def add(self, party: str, *, label: str | None = None) -> tuple[str, IngressToken]:
        """Make a token for ``party``; returns the secret (shown once) and what is stored."""
        if not re.fullmatch(PARTY_ID_PATTERN, party):
            raise ConfigError(f"--party: expected a party id, got {party!r}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(secret)
        record = IngressToken(
            token_id=digest[:12],
            party=party,
            sha256=digest,
            label=label,
            created=dt.datetime.now(dt.UTC),
        )
        self._write([*self._read(), record])
        return secret, record

    def revoke(self, token_id: str) -> IngressToken:
        """Revoke a token by its id (from ``list``); it never authenticates again."""
        tokens = self._read()
        for i, token in enumerate(tokens):
            if token.token_id == token_id:
                if token.revoked is None:
                    tokens[i] = token.model_copy(update={"revoked": dt.datetime.now(dt.UTC)})
                    self._write(tokens)
                return tokens[i]
        raise ConfigError(
            f"ingress token {token_id!r}: no such token (see `hub ingress token list`)"
        )

    def party_for(self, token: str) -> str | None:
        """The party an active token acts for, or None for an unknown or revoked token."""
        self._refresh()
        # The dict is keyed by SHA-256 of the secret: a lookup compares hashes, never
        # secrets, so its timing tells a caller nothing usable about any stored token.
        found = self._by_digest.get(_digest(token))
        return found.party if found is not None and found.active else None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._mtime or mtime is None:
            self._by_digest = {t.sha256: t for t in self._read()}
            self._mtime = mtime
