"""Console accounts: names, roles, parties and Argon2id password hashes, in one TOML file.

The file (``HUB_CONSOLE_ACCOUNTS``, default ``<data_dir>/console-accounts.toml``, mode 0600)
is configuration, managed by ``hub console user add|remove`` or by hand::

    [[account]]
    name = "ig.officer"
    role = "ig-officer"
    party = "west-mercia-police"
    password_hash = "$argon2id$v=19$m=65536,t=3,p=4$..."

Passwords are hashed with Argon2id (RFC 9106; argon2-cffi's defaults are the RFC's
"second recommended" low-memory profile) and are never stored, logged or echoed.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import tomllib
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hub.errors import ConfigError
from hub.models import PARTY_ID_PATTERN

__all__ = ["Account", "Accounts", "Role"]

_HASHER = PasswordHasher()
_MIN_PASSWORD = 12  # NCSC password guidance: length over complexity rules


class Role(StrEnum):
    """What a console user may see (see ``hub.web.access``)."""

    IG_OFFICER = "ig-officer"
    MARAC_COORDINATOR = "marac-coordinator"
    AGENCY_USER = "agency-user"


class Account(BaseModel):
    """One console user. ``party`` is required for agency users: it bounds what they see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,63}$")
    role: Role
    party: str | None = Field(default=None, pattern=PARTY_ID_PATTERN)
    password_hash: str = Field(repr=False, min_length=1)

    @model_validator(mode="after")
    def _agency_users_have_a_party(self) -> Account:
        if self.role is Role.AGENCY_USER and self.party is None:
            raise ValueError("an agency-user account needs a party")
        return self


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so a wrong name costs as long as a wrong password.

    Made once per process when the first ``Accounts`` is opened, not at import: every ``hub``
    command imports this module, and an Argon2id hash is 0.2 s of CPU.
    """
    return _HASHER.hash("not a password: equalises sign-in timing")


class Accounts:
    """The accounts file: read on every sign-in (so edits apply at once), written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _dummy_hash()  # before the first sign-in, which then costs what every other one does

    def load(self) -> list[Account]:
        """Every account; an absent file means none.

        Raises:
            ConfigError: the file is not valid TOML or an account is malformed.
        """
        if not self.path.exists():
            return []
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"console accounts {self.path}: cannot read: {exc}") from exc
        entries = data.get("account", [])
        if not isinstance(entries, list):
            raise ConfigError(f"console accounts {self.path}: expected [[account]] tables")
        accounts: list[Account] = []
        for number, entry in enumerate(entries, start=1):
            try:
                accounts.append(Account.model_validate(entry))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "account"
                raise ConfigError(
                    f"console accounts {self.path}: account {number}: {where}: {first['msg']}"
                ) from exc
        return accounts

    def get(self, name: str) -> Account | None:
        """The account with this name, if any."""
        return next((a for a in self.load() if a.name == name), None)

    def authenticate(self, name: str, password: str) -> Account | None:
        """The account if the password matches its hash, else ``None`` (same cost either way)."""
        account = self.get(name)
        try:
            _HASHER.verify(account.password_hash if account else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return None
        return account

    def add(self, *, name: str, role: Role, party: str | None, password: str) -> Account:
        """Add or replace an account; the password is hashed here and dropped.

        Raises:
            ConfigError: a password shorter than 12 characters, or a malformed account.
        """
        if len(password) < _MIN_PASSWORD:
            raise ConfigError(
                f"password: expected at least {_MIN_PASSWORD} characters, got {len(password)}"
            )
        try:
            account = Account(
                name=name, role=role, party=party, password_hash=_HASHER.hash(password)
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "account"
            raise ConfigError(f"console account {name!r}: {where}: {first['msg']}") from exc
        self._save([*(a for a in self.load() if a.name != name), account])
        return account

    def remove(self, name: str) -> bool:
        """Remove an account; whether it existed."""
        accounts = self.load()
        kept = [a for a in accounts if a.name != name]
        if len(kept) == len(accounts):
            return False
        self._save(kept)
        return True

    def _save(self, accounts: list[Account]) -> None:
        lines = ["# hub console accounts: managed by `hub console user add|remove`", ""]
        for account in accounts:
            lines.append("[[account]]")
            for key, value in account.model_dump(mode="json").items():
                if value is not None:
                    # a JSON string is a valid TOML basic string (same escapes)
                    lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".console-accounts-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
                handle.write("\n".join(lines))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
