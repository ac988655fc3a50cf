"""Per-case keys for retention by crypto-shredding, and the legal holds that stop it.

Kafka logs are immutable: a record cannot be deleted when its retention ends. So every
payload the hub stores is encrypted under a key scoped to its *case*, and destroying that key
makes every copy of the case's ciphertext unreadable, wherever it sits (the audit record of
each disclosure stays; it never held the payload). ICO guidance accepts deletion by putting
data "beyond use"; destroying the only key is how envelope-encryption systems do it.

Layout under ``root`` (the ``keys`` directory; directories 0700, files 0600)::

    cases/<pseudonym>.key       32 random bytes, the case key
    cases/<pseudonym>.shredded  tombstone: the case was shredded, and stays shredded
    holds.json                  legal holds, by case pseudonym

File names use the keyed case pseudonym (``hub.audit.pseudonym.Pseudonymiser.case``), never
the case reference, so a directory listing does not disclose which cases exist; it is the
same pseudonym the audit log shows, so an operator can match the two.

Limits: overwriting before unlinking defeats casual recovery from a plain disk, but not
from copy-on-write filesystems, SSD wear levelling or backups of the data dir. Production
keeps case keys in a KMS (or wrapped by one) and destroys them there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hub.durable import GroupSync
from hub.errors import CaseShreddedError, KeyStoreError, LegalHoldError
from hub.keys.file_store import ensure_private_dir, fsync_dir, write_private_file

__all__ = ["CASE_KEY_BYTES", "CaseKeys", "LegalHold"]

#: case key length: an AES-256 / HKDF-SHA256 input key
CASE_KEY_BYTES = 32
#: case keys a ``CaseKeys`` keeps in memory, most recently used first
CACHED_CASE_KEYS = 10_000
_FILE_MODE = 0o600
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{7,127}")


class LegalHold(BaseModel):
    """A hold on a case (e.g. a Domestic Homicide Review): no shredding until lifted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case: str  # the case pseudonym, never the reference
    reason: str
    by: str
    placed_at: dt.datetime


_HOLDS = TypeAdapter(dict[str, LegalHold])


class CaseKeys:
    """Case keys, tombstones and legal holds in one directory.

    Args:
        root: the ``keys`` directory (``HUB_DATA_DIR/keys``).
        pseudonymise: case reference to a file-name-safe pseudonym, normally
            ``Pseudonymiser(load_pseudonym_key(settings)).case``.
        group: the router's group commit: new case keys are written at once but fsynced by
            ``group.sync_to`` before the event that created them is acknowledged. Without
            it (the CLI, the console) every new key is fsynced as it is written.
    """

    def __init__(
        self,
        root: Path,
        *,
        pseudonymise: Callable[[str], str],
        group: GroupSync | None = None,
    ) -> None:
        self._root = root
        self._dir = root / "cases"
        self._holds_file = root / "holds.json"
        self._pseudonymise = pseudonymise
        # most recently used keys only: a long-running worker meets new cases for ever, and
        # fewer secrets in memory is better anyway (a miss costs one small file read)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._group = group
        self._unsynced: list[Path] = []
        self._unsynced_lock = threading.Lock()
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"CaseKeys({str(self._root)!r})"

    def pseudonym(self, case_ref: str) -> str:
        """The pseudonym naming this case's files (checked safe as a file name)."""
        name = self._pseudonymise(case_ref)
        if not _SAFE_NAME.fullmatch(name):
            raise KeyStoreError(
                f"case pseudonym: expected 8-128 letters, digits, '_' or '-', got {name!r}"
            )
        return name

    def key_for(self, case_ref: str) -> bytes:
        """The case's 32-byte key, created on first use.

        The tombstone is checked on every call (one ``stat``), so a shred by another process
        (``hub keys shred``) takes effect in a running hub at once, cache or not.

        Raises:
            CaseShreddedError: the case was shredded.
        """
        name = self.pseudonym(case_ref)
        if self._tombstone(name).exists():
            self._cache.pop(name, None)
            raise CaseShreddedError(
                f"case {name}: shredded; its key was destroyed and will not be re-created"
            )
        with self._thread_lock:
            cached = self._cache.get(name)
            if cached is not None:
                self._cache.move_to_end(name)
                return cached
        key = self._read_key(name)
        if key is None:
            with self._locked():
                if self._tombstone(name).exists():  # shredded while we waited for the lock
                    raise CaseShreddedError(f"case {name}: shredded")
                key = self._read_key(name)
                if key is None:
                    key = os.urandom(CASE_KEY_BYTES)
                    self._create(name, key)
        with self._thread_lock:
            self._cache[name] = key
            if len(self._cache) > CACHED_CASE_KEYS:
                self._cache.popitem(last=False)
        return key

    def sync(self) -> None:
        """Make the key files created since the last call durable (one fsync each, one dir).

        Called by the router's group commit (``hub.durable``) in a worker thread.
        """
        with self._unsynced_lock:
            pending, self._unsynced = self._unsynced, []
        if not pending:
            return
        try:
            for path in pending:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:  # shredded meanwhile: nothing left to keep
                    continue
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            fsync_dir(self._dir)
        except BaseException:
            with self._unsynced_lock:  # not durable yet: the next round tries them again
                self._unsynced[:0] = pending
            raise

    def _create(self, name: str, key: bytes) -> None:
        """Write a new key file atomically; fsynced now, or by the group commit."""
        if self._group is None:
            write_private_file(self._key_file(name), key)
            return
        path = self._key_file(name)  # the directory exists: _locked made it
        # a fixed temporary name is safe: the caller holds the directory's flock
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not self._group.whole_filesystem:  # else the round's syncfs covers it
            with self._unsynced_lock:
                self._unsynced.append(path)
        self._group.dirty(self.sync, self._dir)

    def is_shredded(self, case_ref: str) -> bool:
        """Whether the case has been shredded."""
        return self._tombstone(self.pseudonym(case_ref)).exists()

    def shred(self, case_ref: str) -> bool:
        """Destroy the case key and leave a tombstone; True if key material was destroyed.

        False means there was nothing to destroy (no key yet, or already shredded); the
        tombstone is written either way, so the case can never get a key afterwards.

        Raises:
            LegalHoldError: the case is under a legal hold.
        """
        return self.shred_pseudonym(self.pseudonym(case_ref))

    def shred_pseudonym(self, name: str) -> bool:
        """``shred`` by the case's pseudonym (the automatic expiry knows no references).

        Raises:
            LegalHoldError: the case is under a legal hold.
            KeyStoreError: ``name`` is not a case pseudonym.
        """
        if not _SAFE_NAME.fullmatch(name):
            raise KeyStoreError(f"case pseudonym: expected a file-name-safe id, got {name!r}")
        with self._locked():
            hold = self._read_holds().get(name)
            if hold is not None:
                raise LegalHoldError(
                    f"case {name}: under legal hold since {hold.placed_at:%Y-%m-%d} by "
                    f"{hold.by} ({hold.reason}); lift it with `hub keys hold lift` first"
                )
            tombstone = self._tombstone(name)
            if not tombstone.exists():
                # tombstone first: if we crash before the key is gone, key_for still refuses
                body = {"case": name, "shredded_at": _now().isoformat()}
                write_private_file(tombstone, (json.dumps(body) + "\n").encode())
            destroyed = _destroy(self._key_file(name))
        self._cache.pop(name, None)
        return destroyed

    def add_hold(self, case_ref: str, reason: str, by: str) -> LegalHold:
        """Place a legal hold on a case.

        Raises:
            LegalHoldError: the case is already held, or reason/by is empty.
            CaseShreddedError: the case was already shredded (nothing left to hold).
        """
        if not reason.strip() or not by.strip():
            raise LegalHoldError("legal hold: expected a reason and who places it, got empty")
        name = self.pseudonym(case_ref)
        with self._locked():
            if self._tombstone(name).exists():
                raise CaseShreddedError(f"case {name}: already shredded; nothing to hold")
            holds = self._read_holds()
            if name in holds:
                held = holds[name]
                raise LegalHoldError(f"case {name}: already under hold by {held.by}")
            hold = LegalHold(case=name, reason=reason.strip(), by=by.strip(), placed_at=_now())
            holds[name] = hold
            self._write_holds(holds)
        return hold

    def lift_hold(self, case_ref: str, by: str) -> LegalHold:
        """Lift a case's legal hold; returns the hold that was lifted.

        ``by`` is required so the CLI and the audit record can say who lifted it.

        Raises:
            LegalHoldError: the case has no hold, or ``by`` is empty.
        """
        if not by.strip():
            raise LegalHoldError("lift legal hold: expected who lifts it, got empty")
        name = self.pseudonym(case_ref)
        with self._locked():
            holds = self._read_holds()
            hold = holds.pop(name, None)
            if hold is None:
                raise LegalHoldError(f"case {name}: expected a legal hold to lift, found none")
            self._write_holds(holds)
        return hold

    def live_cases(self) -> list[str]:
        """Pseudonyms of every case that still has a key (not shredded), sorted."""
        if not self._dir.is_dir():
            return []
        return sorted(
            p.name.removesuffix(".key")
            for p in self._dir.glob("*.key")
            if _SAFE_NAME.fullmatch(p.name.removesuffix(".key"))
            and not self._tombstone(p.name.removesuffix(".key")).exists()
        )

    def hold_on(self, name: str) -> LegalHold | None:
        """The legal hold on the case with pseudonym ``name``, if any."""
        return self._read_holds().get(name)

    def holds(self) -> list[LegalHold]:
        """Every current hold, oldest first."""
        return sorted(self._read_holds().values(), key=lambda h: h.placed_at)

    # -- files -----------------------------------------------------------------------------

    def _key_file(self, name: str) -> Path:
        return self._dir / f"{name}.key"

    def _tombstone(self, name: str) -> Path:
        return self._dir / f"{name}.shredded"

    def _read_key(self, name: str) -> bytes | None:
        try:
            key = self._key_file(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"case key {name}: unreadable: {exc}") from exc
        if len(key) != CASE_KEY_BYTES:
            raise KeyStoreError(f"case key {name}: expected {CASE_KEY_BYTES} bytes, got {len(key)}")
        return key

    def _read_holds(self) -> dict[str, LegalHold]:
        try:
            return _HOLDS.validate_json(self._holds_file.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValidationError) as exc:
            raise KeyStoreError(f"legal holds {self._holds_file}: unreadable: {exc}") from exc

    def _write_holds(self, holds: dict[str, LegalHold]) -> None:
        write_private_file(self._holds_file, _HOLDS.dump_json(holds, indent=2) + b"\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """flock(2) across processes: a hold and a shred must not interleave.

        The lock file stays open for the life of this object (opening it for every new case
        was a measurable part of routing an event that opens a case); a thread lock
        serialises this process's threads, which share the one descriptor.
        """
        with self._thread_lock:
            if self._lock_fd is None:
                ensure_private_dir(self._root)
                ensure_private_dir(self._dir)
                self._lock_fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the lock file's descriptor (a new lock reopens it)."""
        with self._thread_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # type: ignore[arg-type]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _destroy(path: Path) -> bool:
    """Overwrite with random bytes, fsync, unlink; False if there was no file."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, os.urandom(max(size, CASE_KEY_BYTES)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    fsync_dir(path.parent)
    return True
