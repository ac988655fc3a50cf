"""``FileKeyStore``: the development key store, files under ``HUB_DATA_DIR/keys``.

Layout (directories 0700, files 0600, every file written to a temporary name, fsynced and
renamed into place so a crash or a concurrent reader never sees half a key)::

    keys/
      directory.json          public records (``PartyKeys``) of every generation
      private/<kid>.key       one JSON file per key id ('#' and ':' as '_'): algorithm, raw key
      .lock                   flock(2) serialising writers across hub processes

Private keys are written before the directory names them, so the directory never points at
a key that does not exist. This store is for development and tests: keys sit unencrypted on
disk, protected by file modes only. Production uses a KMS-backed ``KeyStore``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from hub.envelope import ed25519
from hub.errors import KeyRevokedError, KeyStoreError, UnknownKeyError
from hub.keys.model import (
    EncryptionKey,
    HpkePrivateKey,
    KeyStatus,
    KeySuite,
    PartyKeys,
    b64decode,
    b64encode,
    key_id,
)
from hub.keys.peers import PeerPins
from hub.models import PARTY_ID_PATTERN

__all__ = ["DIRECTORY_FORMAT", "RECHECK_S", "FileKeyStore"]

#: format tag of ``directory.json`` (and of ``hub keys export``), bumped on breaking change
#: (v2: ``additional_encryption_keys``, encryption key ids naming their suite)
DIRECTORY_FORMAT = "hub.keys.directory.v2"
#: formats this store still reads (a v1 directory is a v2 one with no additional keys)
_READABLE_FORMATS = ("hub.keys.directory.v1", DIRECTORY_FORMAT)
_DIR_MODE = 0o700
_FILE_MODE = 0o600
_ED25519 = "ed25519"
_MLKEM_SEED_LEN = 64  # FIPS 203 (d, z) seed: the compact, canonical ML-KEM private key
#: how long a store trusts its copy of ``directory.json`` before it stats the file again
#: (seconds): a rotation or revocation by another process takes effect within this delay
RECHECK_S = 0.05

#: writes to each keys directory by this process, by resolved path: a store sees a write by
#: another store object of the same process (the console, the CLI under test) at once
_local_writes: dict[str, int] = {}
_local_lock = threading.Lock()


def _bump_local(root: Path) -> None:
    with _local_lock:
        key = str(root.resolve())
        _local_writes[key] = _local_writes.get(key, 0) + 1


class FileKeyStore:
    """A ``KeyStore`` backed by files; safe to share between hub processes on one host.

    Key material is resolved once per key id, not once per signature: the parsed directory,
    its indexes and the private key objects are cached, and ``sign`` on an active key is one
    dictionary lookup. The cache follows ``directory.json`` by its inode, mtime and size,
    checked at most once per ``recheck_s`` (a write by this process, through any
    ``FileKeyStore`` on the same directory, is seen at once). Whenever the file has changed
    the cache is rebuilt before any key is used, so a key is never used for signing once the
    store has seen its revocation or retirement: at once for a revocation made in this
    process, within ``recheck_s`` for one made by another process (``hub keys revoke``).

    Args:
        root: the ``keys`` directory.
        recheck_s: how long the cached directory is trusted before the file is stat'ed again
            (0 stats on every lookup, as this store did before).
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        root: Path,
        *,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = root
        self._directory_file = root / "directory.json"
        self._private_dir = root / "private"
        self._recheck_s = recheck_s
        self._clock = clock
        self._local_key = str(root.resolve())
        self._checked_at: float | None = None  # when the file was last stat'ed
        self._seen_local = -1  # _local_writes[root] when it was
        self._cache_stamp: tuple[int, int, int] | None = None
        self._records: list[PartyKeys] = []
        # indexes of _records, rebuilt with it: the router looks keys up for every delivery
        self._by_party: dict[str, list[PartyKeys]] = {}
        self._by_kid: dict[str, PartyKeys] = {}
        # (by_kid, signing key id -> private key of an *active* key), replaced as one object
        # whenever the directory changes, so a revoked or retired key drops out before its
        # next use, and a key checked against an old index never enters a new cache
        self._sign_index: tuple[dict[str, PartyKeys], dict[str, ed25519.Signer]] = ({}, {})
        # private keys never change once written, so they are cached for the process lifetime
        self._signers: dict[str, Ed25519PrivateKey] = {}
        self._openers: dict[str, HpkePrivateKey] = {}
        self._pins = PeerPins(root)

    def __repr__(self) -> str:
        return f"FileKeyStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        """The ``keys`` directory."""
        return self._root

    # -- KeyDirectory --------------------------------------------------------------------

    def parties(self) -> list[str]:
        """Every party that has at least one key generation, sorted."""
        return sorted({r.party for r in self._load()})

    def public(self, party: str) -> list[PartyKeys]:
        """All generations of a party, newest first; empty if the party has none.

        A peer hub's pinned keys (``hub.keys.peers``) come first: deliveries to a peer are
        sealed to the keys it exported, never to a key made here under its id.
        """
        pinned = self._pins.public(party)
        if pinned:
            return pinned
        self._refresh()
        return list(self._by_party.get(party, ()))

    def active(self, party: str) -> PartyKeys:
        """The party's active generation (see ``KeyDirectory.active``)."""
        for record in self.public(party):
            if record.status is KeyStatus.ACTIVE:
                return record
        command = "rotate" if self.public(party) else "init"
        hint = f"run `hub keys {command} --party {party}`"
        if command == "init":
            hint += f" (a peer hub: `hub keys import --peer {party}` with its export)"
        if self._pins.public(party):  # a peer hub: its keys come only from its export
            hint = f"pin the peer's new keys with `hub keys import --peer {party}`"
        raise UnknownKeyError(f"party {party}: expected an active key, found none; {hint}")

    def by_key_id(self, kid: str) -> PartyKeys:
        """The generation holding ``kid`` (see ``KeyDirectory.by_key_id``)."""
        self._refresh()
        record = self._by_kid.get(kid)
        if record is not None:
            return record
        raise UnknownKeyError(f"key {kid}: no such key id in {self._directory_file}")

    # -- KeyStore: lifecycle -------------------------------------------------------------

    def create_party(
        self,
        party: str,
        *,
        suite: KeySuite = KeySuite.X25519,
        extra_suites: Iterable[KeySuite] = (),
    ) -> PartyKeys:
        """Create a party's first generation (see ``KeyStore.create_party``)."""
        if not re.fullmatch(PARTY_ID_PATTERN, party):
            raise KeyStoreError(
                f"party id {party!r}: expected lowercase words joined by '-' or '.'"
            )
        with self._writing() as records:
            if any(r.party == party for r in records):
                raise KeyStoreError(
                    f"party {party}: already has keys; use `hub keys rotate --party {party}`"
                )
            record = self._generate(party, suite, extra_suites)
            records.append(record)
        return record

    def rotate(
        self,
        party: str,
        *,
        suite: KeySuite | None = None,
        extra_suites: Iterable[KeySuite] | None = None,
    ) -> PartyKeys:
        """Retire the active generation and create a new one (see ``KeyStore.rotate``)."""
        with self._writing() as records:
            mine = [r for r in records if r.party == party]
            if not mine:
                raise UnknownKeyError(
                    f"party {party}: no keys to rotate; run `hub keys init --party {party}`"
                )
            now = _now()
            for i, record in enumerate(records):
                if record.party == party and record.status is KeyStatus.ACTIVE:
                    records[i] = record.model_copy(
                        update={"status": KeyStatus.RETIRED, "retired_at": now}
                    )
            newest = mine[-1]
            extra = newest.suites[1:] if extra_suites is None else tuple(extra_suites)
            new = self._generate(party, suite or newest.suite, extra)
            records.append(new)
        return new

    def revoke(self, kid: str, *, reason: str) -> PartyKeys:
        """Revoke the generation holding ``kid`` (see ``KeyStore.revoke``)."""
        if not reason.strip():
            raise KeyStoreError(f"revoke {kid}: expected a reason, got an empty one")
        with self._writing() as records:
            for i, record in enumerate(records):
                if kid in record.key_ids:
                    if record.status is KeyStatus.REVOKED:
                        return record  # idempotent: keep the first revocation's time
                    records[i] = record.model_copy(
                        update={
                            "status": KeyStatus.REVOKED,
                            "revoked_at": _now(),
                            "revocation_reason": reason.strip(),
                        }
                    )
                    return records[i]
        raise UnknownKeyError(f"key {kid}: no such key id in {self._directory_file}")

    # -- KeyStore: private-key operations --------------------------------------------------

    def sign(self, kid: str, data: bytes) -> bytes:
        """Ed25519-sign ``data`` with an active key (see ``KeyStore.sign``)."""
        self._refresh()
        by_kid, active_signers = self._sign_index  # one snapshot: lookup, checks and insert
        signer = active_signers.get(kid)
        if signer is not None:  # resolved and checked active since the directory last changed
            return signer.sign(data)
        record = by_kid.get(kid)
        if record is None:
            raise UnknownKeyError(f"key {kid}: no such key id in {self._directory_file}")
        if kid != record.signing_key_id:
            raise UnknownKeyError(f"key {kid}: expected a signing key id, got an encryption key")
        if record.status is KeyStatus.REVOKED:
            raise KeyRevokedError(f"signing key {kid}: revoked ({record.revocation_reason})")
        if record.status is KeyStatus.RETIRED:
            active = self.active(record.party).signing_key_id
            raise KeyStoreError(f"signing key {kid}: retired by rotation; sign with {active}")
        signer = ed25519.Signer(self.signing_private(kid))  # libsodium: the same signatures
        active_signers[kid] = signer
        return signer.sign(data)

    def hpke_open(self, kid: str, ciphertext: bytes, *, info: bytes = b"") -> bytes:
        """Open ``enc || ct`` sealed to ``kid`` (see ``KeyStore.hpke_open``)."""
        enc = self.by_key_id(kid).encryption_key(kid)
        if enc is None:
            raise UnknownKeyError(f"key {kid}: expected an encryption key id, got a signing key")
        private = self.hpke_private(kid)
        try:
            return enc.suite.hpke_suite().decrypt(ciphertext, private, info)
        except (InvalidTag, ValueError) as exc:
            raise KeyStoreError(
                f"HPKE ciphertext for {kid}: expected one sealed to this key with this info, "
                "got one that does not open"
            ) from exc

    def hpke_private(self, kid: str) -> HpkePrivateKey:
        """The HPKE private key object for an encryption key id, any status."""
        cached = self._openers.get(kid)
        if cached is not None:
            return cached
        enc = self.by_key_id(kid).encryption_key(kid)
        if enc is None:
            raise UnknownKeyError(f"key {kid}: expected an encryption key id, got a signing key")
        key = _hpke_private_from(enc.suite, self._read_private(kid, enc.suite.value))
        self._openers[kid] = key
        return key

    def signing_private(self, kid: str) -> Ed25519PrivateKey:
        """The Ed25519 private key object (file store only: prefer ``sign``), any status."""
        cached = self._signers.get(kid)
        if cached is not None:
            return cached
        record = self.by_key_id(kid)
        if kid != record.signing_key_id:
            raise UnknownKeyError(f"key {kid}: expected a signing key id, got an encryption key")
        key = Ed25519PrivateKey.from_private_bytes(self._read_private(kid, _ED25519))
        self._signers[kid] = key
        return key

    # -- files -----------------------------------------------------------------------------

    def _generate(
        self, party: str, suite: KeySuite, extra_suites: Iterable[KeySuite] = ()
    ) -> PartyKeys:
        """New keys: private files first, then the record the caller adds to the directory.

        One signing key, and one encryption key for ``suite`` (the primary) and for each of
        ``extra_suites`` not equal to it.
        """
        signer = Ed25519PrivateKey.generate()
        signing_public = signer.public_key().public_bytes_raw()
        keys: list[EncryptionKey] = []
        for each in dict.fromkeys([suite, *extra_suites]):
            hpke_raw, hpke_public = _hpke_generate(each)
            kid = key_id(party, hpke_public, suite=each)
            self._write_private(kid, each.value, hpke_raw)
            keys.append(EncryptionKey(key_id=kid, suite=each, public_key=b64encode(hpke_public)))
        record = PartyKeys(
            party=party,
            signing_key_id=key_id(party, signing_public),
            signing_public_key=b64encode(signing_public),
            encryption_key_id=keys[0].key_id,
            suite=suite,
            encryption_public_key=keys[0].public_key,
            additional_encryption_keys=tuple(keys[1:]),
            created=_now(),
        )
        self._write_private(record.signing_key_id, _ED25519, signer.private_bytes_raw())
        return record

    def _private_path(self, kid: str) -> Path:
        # '#' is awkward in shells and ':' on some filesystems; '_' never occurs in a party id
        # or a suite name, so the name is unambiguous
        return self._private_dir / (kid.replace("#", "_").replace(":", "_") + ".key")

    def _write_private(self, kid: str, algorithm: str, raw: bytes) -> None:
        body = {"kid": kid, "algorithm": algorithm, "private_key": b64encode(raw)}
        ensure_private_dir(self._private_dir)
        write_private_file(
            self._private_path(kid), (json.dumps(body, sort_keys=True) + "\n").encode()
        )

    def _read_private(self, kid: str, algorithm: str) -> bytes:
        path = self._private_path(kid)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("kid") != kid or body.get("algorithm") != algorithm:
                raise ValueError(f"expected kid {kid} and algorithm {algorithm}")
            return b64decode(body["private_key"])
        except FileNotFoundError:
            raise UnknownKeyError(
                f"key {kid}: the directory names it but {path} is missing; "
                "this store does not hold its private key"
            ) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"private key file {path}: unreadable: {exc}") from exc

    def _load(self) -> list[PartyKeys]:
        """The directory (a copy the caller may change), re-read only when the file changed."""
        self._refresh()
        return list(self._records)

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the directory if the file changed (stat is cheap; JSON is not).

        The file is stat'ed at most once per ``recheck_s``, at once after a write by this
        process, and always when ``force`` (a writer, under the lock, must read what is on
        disk). A rotation or revocation by another process (``hub keys``) takes effect in a
        running hub within ``recheck_s``.
        """
        now = self._clock()
        local = _local_writes.get(self._local_key, 0)
        if (
            not force
            and self._checked_at is not None
            and now - self._checked_at < self._recheck_s
            and local == self._seen_local
        ):
            return
        try:
            st = self._directory_file.stat()
        except FileNotFoundError:
            self._cache_stamp, self._records = None, []
            self._by_party, self._by_kid, self._sign_index = {}, {}, ({}, {})
            self._checked_at, self._seen_local = now, local
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._cache_stamp:
            self._checked_at, self._seen_local = now, local
            return
        records = self._parse(self._directory_file.read_text(encoding="utf-8"))
        by_party: dict[str, list[PartyKeys]] = {}
        by_kid: dict[str, PartyKeys] = {}
        for record in reversed(records):  # newest first, as public() promises
            by_party.setdefault(record.party, []).append(record)
        for record in records:
            for kid in record.key_ids:
                by_kid.setdefault(kid, record)  # the first holder, as the scan found it
        self._records, self._by_party, self._by_kid = records, by_party, by_kid
        self._sign_index = (by_kid, {})
        self._cache_stamp = stamp
        self._checked_at, self._seen_local = now, local

    def _parse(self, text: str) -> list[PartyKeys]:
        where = self._directory_file
        try:
            body: dict[str, Any] = json.loads(text)
            if body.get("format") not in _READABLE_FORMATS:
                raise ValueError(f"expected format {DIRECTORY_FORMAT}, got {body.get('format')}")
            records = [PartyKeys.model_validate(item) for item in body["keys"]]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise KeyStoreError(f"key directory {where}: unreadable: {exc}") from exc
        for record in records:
            record.check_ids()
        return records

    @contextlib.contextmanager
    def _writing(self) -> Iterator[list[PartyKeys]]:
        """Lock, yield the records to mutate in place, then write them back atomically."""
        ensure_private_dir(self._root)
        lock_path = self._root / ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._refresh(force=True)  # under the lock: what is on disk, not a cached copy
            records = list(self._records)
            before = list(records)
            yield records
            if records != before:
                body = {
                    "format": DIRECTORY_FORMAT,
                    "keys": [r.model_dump(mode="json") for r in records],
                }
                write_private_file(
                    self._directory_file, (json.dumps(body, indent=2) + "\n").encode()
                )
                _bump_local(self._root)  # every store of this process re-reads at once
        finally:
            os.close(fd)  # closing releases the flock


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _hpke_generate(suite: KeySuite) -> tuple[bytes, bytes]:
    """(raw private, raw public) for a new HPKE key of ``suite``."""
    x = x25519.X25519PrivateKey.generate()
    x_private, x_public = x.private_bytes_raw(), x.public_key().public_bytes_raw()
    if suite is KeySuite.X25519:
        return x_private, x_public
    m = mlkem.MLKEM768PrivateKey.generate()
    # private: 64-byte ML-KEM seed then X25519; public: ML-KEM key then X25519 (model.py)
    return m.private_bytes_raw() + x_private, m.public_key().public_bytes_raw() + x_public


def _hpke_private_from(suite: KeySuite, raw: bytes) -> HpkePrivateKey:
    try:
        if suite is KeySuite.X25519:
            return x25519.X25519PrivateKey.from_private_bytes(raw)
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED_LEN]),
            x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED_LEN:]),
        )
    except ValueError as exc:
        raise KeyStoreError(f"{suite.value} private key: expected a valid key: {exc}") from exc


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, and tighten it if it already exists more open.

    ``mkdir``'s mode is filtered by the umask and ignored for an existing directory, so the
    mode is checked and set explicitly. (Shared with ``hub.keys.cases``.)
    """
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    if (path.stat().st_mode & 0o777) != _DIR_MODE:
        path.chmod(_DIR_MODE)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically with mode 0600: temporary file, fsync, rename, fsync dir.

    A reader (another hub process) sees the old file or the new one, never half of one,
    and the rename survives a crash. (Shared with ``hub.keys.cases``.)
    """
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (fsync the directory itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
