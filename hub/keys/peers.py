"""Peer hubs' public keys, pinned by key id (federation, issue 20).

A peer hub (``hub.policies.model.PEER_KIND``) sends its own hub keys with ``hub keys export
--party hub``; this hub pins them with ``hub keys import --peer <id> FILE``, which keeps the
records exactly as exported (their ids are derived from their public keys, so an edited key
is refused) in ``<keys>/peers/<id>.json``. Pinned keys are never created, rotated or
shredded here: a new generation arrives only by importing the peer's export again.

They serve two purposes, and nothing else:

- sealing: ``FileKeyStore.public(peer)`` answers with the pinned generations, so a delivery
  a rule addresses to the peer is sealed to the peer hub's own key;
- verifying: ``PinnedDirectory`` resolves a peer hub's signing key id to the peer's party id,
  for transfers arriving from it (``hub.federation.inbound``). Pinned keys are never found
  by ``KeyStore.by_key_id``: a peer's key can never sign as this hub or as a local party.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from hub.errors import KeyStoreError
from hub.keys.model import KeyStatus, PartyKeys
from hub.models import PARTY_ID_PATTERN

__all__ = ["PEERS_DIR", "PeerPins", "PinnedDirectory", "parse_export"]

PEERS_DIR = "peers"
#: the party whose keys a peer hub exports for federation: the hub itself
_HUB = "hub"
_PEER_ID = re.compile(PARTY_ID_PATTERN)


def parse_export(text: str, *, source: str, directory_format: str) -> list[PartyKeys]:
    """The peer hub's own key generations (party ``hub``) from a ``hub keys export``.

    Raises:
        KeyStoreError: not an export of this format, no hub keys in it, or a key whose id
            does not match its public key.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise KeyStoreError(f"{source}: expected the JSON of `hub keys export`, got {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != directory_format:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise KeyStoreError(
            f"{source}: expected a `hub keys export` of format {directory_format}, got {found!r}"
        )
    try:
        records = [PartyKeys.model_validate(r) for r in document.get("keys", ())]
    except ValidationError as exc:
        raise KeyStoreError(f"{source}: a key record is malformed: {exc}") from exc
    hub_keys = [r for r in records if r.party == _HUB]
    if not hub_keys:
        raise KeyStoreError(
            f"{source}: expected the peer hub's own keys (party 'hub'), found parties "
            f"{sorted({r.party for r in records}) or 'none'}; export them with "
            "`hub keys export --party hub`"
        )
    for record in hub_keys:
        record.check_ids()
    return hub_keys


class PeerPins:
    """The pinned keys of every peer, one file per peer under ``<keys>/peers``.

    Read on demand and cached by the file's modification time and size, looked at no more
    than once per ``recheck_s`` per party (the router asks for every delivery), so an import
    made by another process (``hub keys import --peer``) is seen within ``recheck_s``.
    """

    def __init__(
        self,
        keys_dir: Path,
        *,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = keys_dir / PEERS_DIR
        self._recheck_s = recheck_s
        self._clock = clock
        # party -> (when looked at, file stamp or None when absent, records)
        self._cache: dict[str, tuple[float, tuple[int, int] | None, list[PartyKeys]]] = {}

    def path(self, peer: str) -> Path:
        """Where ``peer``'s pins live."""
        if not _PEER_ID.fullmatch(peer):
            raise KeyStoreError(f"peer id: expected a party id, got {peer!r}")
        return self._dir / f"{peer}.json"

    def public(self, peer: str) -> list[PartyKeys]:
        """``peer``'s pinned generations, newest first; empty when none are pinned."""
        now = self._clock()
        cached = self._cache.get(peer)
        if cached is not None and now - cached[0] < self._recheck_s:
            return list(cached[2])
        if not _PEER_ID.fullmatch(peer):
            return []
        path = self._dir / f"{peer}.json"
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._cache[peer] = (now, None, [])
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if cached is not None and cached[1] == stamp:
            self._cache[peer] = (now, stamp, cached[2])
            return list(cached[2])
        try:
            rows = json.loads(path.read_text("utf-8"))
            records = [PartyKeys.model_validate(r) for r in rows]
        except (json.JSONDecodeError, ValidationError, TypeError) as exc:
            raise KeyStoreError(
                f"{path}: expected pinned keys written by `hub keys import --peer`, got {exc}"
            ) from exc
        records.sort(key=lambda r: r.created, reverse=True)
        self._cache[peer] = (now, stamp, records)
        return list(records)

    def pin(self, peer: str, records: list[PartyKeys]) -> Path:
        """Pin ``records`` as ``peer``'s keys (replacing earlier pins), atomically."""
        path = self.path(peer)
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(
            json.dumps([r.model_dump(mode="json") for r in records], indent=2) + "\n", "utf-8"
        )
        os.replace(tmp, path)
        self._cache.pop(peer, None)
        return path


class PinnedDirectory:
    """One peer's pinned signing keys as a ``hub.envelope.sealing.KeyDirectory``.

    Every pinned key is owned by the peer (its party id in this protocol), whatever name the
    peer gave it at home.
    """

    def __init__(self, peer: str, records: list[PartyKeys]) -> None:
        self._peer = peer
        self._by_kid = {r.signing_key_id: r for r in records}

    def signing_key(self, kid: str) -> tuple[str, Ed25519PublicKey, bool]:
        """(peer, public key, revoked?) of a pinned signing key; KeyError if not pinned."""
        record = self._by_kid[kid]
        return self._peer, record.signing_public(), record.status is KeyStatus.REVOKED
