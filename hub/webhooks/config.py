"""Which parties get webhooks: ``<data_dir>/webhooks.json``, created 0600, never in the repo.

The file holds each party's endpoint URL and signing secret. ``hub webhooks add`` writes it and
prints the secret once (the agency configures its receiver with it); nothing else shows it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from hub.errors import ConfigError
from hub.models import PARTY_ID_PATTERN
from hub.webhooks.signing import new_secret

__all__ = ["WebhookConfig", "WebhookEndpoint"]


class WebhookEndpoint(BaseModel):
    """One party's endpoint."""

    party: str = Field(pattern=PARTY_ID_PATTERN)
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr


class WebhookConfig:
    """The webhooks file of one hub."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def endpoints(self) -> dict[str, WebhookEndpoint]:
        """Every configured endpoint by party (none when the file does not exist)."""
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {p: WebhookEndpoint(party=p, **e) for p, e in raw["endpoints"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: not a webhooks file ({exc})") from exc

    def add(self, party: str, url: str) -> str:
        """Add or replace a party's endpoint with a new secret; returns the secret."""
        secret = new_secret()
        endpoints = self.endpoints()
        endpoints[party] = WebhookEndpoint(party=party, url=url, secret=SecretStr(secret))
        self._write(endpoints)
        return secret

    def remove(self, party: str) -> bool:
        """Remove a party's endpoint; False when it had none."""
        endpoints = self.endpoints()
        if endpoints.pop(party, None) is None:
            return False
        self._write(endpoints)
        return True

    def _write(self, endpoints: dict[str, WebhookEndpoint]) -> None:
        body = {
            "endpoints": {
                p: {"url": e.url, "secret": e.secret.get_secret_value()}
                for p, e in sorted(endpoints.items())
            }
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # secrets: owner only
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle, indent=2)
        os.replace(tmp, self.path)
