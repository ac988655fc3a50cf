"""Canonical JSON: the one home of the encoders whose bytes the hub hashes, signs or stores.

Sorted keys and no spaces, so two parties that build the same value get the same bytes. Two
escapes, each fixed by bytes already in the world, so they are kept apart on purpose:

- ``canonical_json``: UTF-8 as is (``ensure_ascii`` off), dates and times in ISO 8601. The
  envelope's signed context and signing input, a delivery's payload (whose SHA-256 the audit
  record carries) and the audit sink's checkpoint notices. The envelope vectors
  (``tests/vectors/envelope``) hold it byte for byte.
- ``CANONICAL_ASCII``: every non-ASCII character escaped (``ensure_ascii`` on). The audit
  log's packed values (``hub.audit.packing``): their bytes are the Merkle leaves of every
  stored log, so changing the escape would change the hash of every record already written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, Protocol

__all__ = ["CANONICAL_ASCII", "canonical_json", "update_length_prefixed"]


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: one encoder for every call: ``json.dumps`` with options builds a new one each time
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
)
#: the audit log's packing encoder (see the module docstring: its bytes are stored leaves)
CANONICAL_ASCII = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(data: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8, ISO 8601 dates)."""
    return _CANONICAL.encode(data).encode()


class _Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...


def update_length_prefixed(hasher: _Hasher, parts: Iterable[bytes]) -> None:
    """Feed each part to a hash or MAC after its length (8 bytes, big-endian).

    So that no two lists of parts make the same input (``ab``+``c`` is not ``a``+``bc``).
    """
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
