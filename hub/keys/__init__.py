"""Party keys, the key store and per-case keys for crypto-shredding.

- ``PartyKeys`` / ``KeySuite`` / ``KeyStatus``: public key records (``hub.keys.model``).
- ``KeyStore`` / ``KeyDirectory``: the store's role, ready for a KMS (``hub.keys.store``).
- ``FileKeyStore``: the development store under ``HUB_DATA_DIR/keys``.
- ``CaseKeys`` / ``LegalHold``: case keys, shredding and legal holds (``hub.keys.cases``).
"""

from __future__ import annotations

from hub.keys.cases import CASE_KEY_BYTES, CaseKeys, LegalHold
from hub.keys.file_store import DIRECTORY_FORMAT, FileKeyStore
from hub.keys.model import (
    HUB_PARTY,
    HpkePrivateKey,
    HpkePublicKey,
    KeyStatus,
    KeySuite,
    PartyKeys,
    key_id,
)
from hub.keys.store import KeyDirectory, KeyStore, ensure_dev_keys, verifying_key

__all__ = [
    "CASE_KEY_BYTES",
    "DIRECTORY_FORMAT",
    "HUB_PARTY",
    "CaseKeys",
    "FileKeyStore",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KeyDirectory",
    "KeyStatus",
    "KeyStore",
    "KeySuite",
    "LegalHold",
    "PartyKeys",
    "ensure_dev_keys",
    "key_id",
    "verifying_key",
]
