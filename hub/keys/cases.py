"""Per-case keys for retention by crypto-shredding, and the legal holds that stop it.

Kafka logs are immutable: a record cannot be deleted when its retention ends. So every
payload the hub stores is encrypted under a key scoped to its *case*, and destroying that key
makes every copy of the case's ciphertext unreadable, wherever it sits (the audit record of
each disclosure stays; it never held the payload). ICO guidance accepts deletion by putting
data "beyond use"; destroying the only key is how envelope-encryption systems do it.

Layout under ``root`` (the ``keys`` directory; directories 0700, files 0600)::

    cases/keyring.sqlite3       the keyring: every live case key, and the shredded cases
    cases/keyring.sqlite3-wal   its write-ahead log (and -shm, its index), same mode
    cases/.lock                 flock(2): a hold and a shred never interleave
    holds.json                  legal holds, by case pseudonym

One SQLite file, not a file per case (a million cases were a million files, and creating a
file was most of the cost of routing an event that opens a case). Tables: ``case_keys``
(pseudonym, 32-byte key) and ``shredded`` (pseudonym, time: the tombstone). Cases are
named by the keyed case pseudonym (``hub.audit.pseudonym.Pseudonymiser.case``), never the
case reference, so the keyring does not disclose which cases exist; it is the pseudonym the
audit log shows, so an operator can match the two. Per-case files left by earlier versions
(``cases/<pseudonym>.key`` and ``.shredded``) are moved into the keyring when it is opened,
then destroyed as before (overwritten, unlinked).

Durability: with the router's group commit a new key is committed but not fsynced
(``synchronous=NORMAL``): ``GroupSync`` makes it durable (``sync``: one fsync of the
write-ahead log, or the round's ``syncfs``) before the event that created it is
acknowledged. Without it (the CLI, the console) every commit is fsynced. The route loop
commits a batch's new keys together, after routing it and before producing anything of it
(``deferred``).

What shredding does on disk (``shred``): in one transaction the tombstone is written and the
key's row deleted with ``PRAGMA secure_delete=ON``, so SQLite overwrites the deleted row with
zeros in its page rather than leaving it in free space; the commit is fsynced; then a
``wal_checkpoint(TRUNCATE)`` copies the zeroed page into the database file and truncates the
write-ahead log, which held copies of that page from when the key was written. After it, the
key's bytes are in no file of the keyring (``tests/unit/test_keyring.py`` searches them).

What it does not guarantee: blocks freed by truncating the log are not overwritten by the
filesystem; copy-on-write filesystems (btrfs, ZFS), SSD wear levelling, snapshots and
backups of the data dir can keep old copies; if another process is reading the keyring at
that moment the log cannot be truncated at once (the shred still stands: the row is gone
and the tombstone written; the frames are dropped by a later checkpoint); and a running hub
may still have the key in freed memory. Production keeps case keys in a KMS (or wrapped by
one) and destroys them there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from hub.durable import GroupSync
from hub.errors import CaseShreddedError, KeyStoreError, LegalHoldError
from hub.keys.file_store import ensure_private_dir, fsync_dir, write_private_file
from hub.sqlite_wal import enable_wal, write_transaction

__all__ = ["CASE_KEY_BYTES", "KEYRING_FILE", "CaseKeys", "LegalHold", "LostKeys"]

#: case key length: an AES-256 / HKDF-SHA256 input key
CASE_KEY_BYTES = 32
#: the keyring's file name, under ``<keys>/cases/``
KEYRING_FILE = "keyring.sqlite3"
_FILE_MODE = 0o600
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{7,127}")
_TIMEOUT_S = 30.0
#: a case's key (or NULL), and whether it was shredded: one statement (``deferred``)
_KEY_OR_TOMBSTONE = (
    "SELECT (SELECT key FROM case_keys WHERE name = ?1), "
    "EXISTS (SELECT 1 FROM shredded WHERE name = ?1)"
)
_DDL = (
    "CREATE TABLE IF NOT EXISTS case_keys (name TEXT PRIMARY KEY, key BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shredded (name TEXT PRIMARY KEY, shredded_at TEXT NOT NULL)",
)


class LegalHold(BaseModel):
    """A hold on a case (e.g. a Domestic Homicide Review): no shredding until lifted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case: str  # the case pseudonym, never the reference
    reason: str
    by: str
    placed_at: dt.datetime


_HOLDS = TypeAdapter(dict[str, LegalHold])


class CaseKeys:
    """Case keys, tombstones and legal holds; safe to share between hub processes.

    Args:
        root: the ``keys`` directory (``HUB_DATA_DIR/keys``).
        pseudonymise: case reference to a file-name-safe pseudonym, normally
            ``Pseudonymiser(load_pseudonym_key(settings)).case``.
        group: the router's group commit: new case keys are committed at once but fsynced
            by ``group.sync_to`` before the event that created them is acknowledged. Without
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
        self._path = self._dir / KEYRING_FILE
        self._holds_file = root / "holds.json"
        self._pseudonymise = pseudonymise
        self._group = group
        self._conn: sqlite3.Connection | None = None
        # one connection per object: this lock serialises this process's threads on it (the
        # router's loop creates keys while a worker thread may sync)
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0  # _locked() nesting in this process (thread lock held)
        self._deferring: _Deferred | None = None  # ``deferred()``'s keys, with its thread

    def __repr__(self) -> str:
        return f"CaseKeys({str(self._root)!r})"

    @property
    def path(self) -> Path:
        """The keyring file."""
        return self._path

    def pseudonym(self, case_ref: str) -> str:
        """The pseudonym naming this case in the keyring (checked safe as a file name)."""
        name = self._pseudonymise(case_ref)
        if not _SAFE_NAME.fullmatch(name):
            raise KeyStoreError(
                f"case pseudonym: expected 8-128 letters, digits, '_' or '-', got {name!r}"
            )
        return name

    def key_for(self, case_ref: str) -> bytes:
        """The case's 32-byte key, created on first use.

        Read from the keyring on every call (one indexed lookup; nothing is cached in
        memory), so a shred by another process (``hub keys shred``) takes effect in a running
        hub at once. Inside ``deferred`` a new key is written when the block ends.

        Raises:
            CaseShreddedError: the case was shredded.
        """
        name = self.pseudonym(case_ref)
        deferring = self._deferred_here()
        if deferring is not None and name in deferring.keys:
            return deferring.keys[name]
        with self._thread_lock:
            db = self._db()
            try:
                if deferring is not None:  # a new key is written when the block ends
                    key, shredded = db.execute(_KEY_OR_TOMBSTONE, (name,)).fetchone()
                    if key is not None:
                        return _checked(name, key)
                    if shredded:
                        raise _shredded(name)
                    return deferring.new(name)
                stored = self._stored(name)
                if stored is not None:
                    return stored
                key = os.urandom(CASE_KEY_BYTES)
                # one statement, so one atomic transaction: no key for a shredded case, and
                # of two processes creating the same case's key, the first one wins
                created = db.execute(
                    "INSERT INTO case_keys (name, key) SELECT ?, ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM shredded WHERE name = ?) ON CONFLICT (name) DO NOTHING",
                    (name, key, name),
                ).rowcount
                if not created:
                    stored = self._stored(name)  # another process created it meanwhile
                    if stored is None:
                        raise _shredded(name)
                    return stored
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        if self._group is not None:  # committed, not yet fsynced: the group round does it
            self._group.dirty(self.sync, self._dir)
        return key

    @contextlib.contextmanager
    def deferred(self) -> Iterator[LostKeys]:
        """New case keys kept in memory for the block, then written in one transaction.

        Why: the route loop routes a batch of events, and most events of a live partnership
        open a case; a commit per new key was the largest cost of routing such an event
        after its signatures. Nothing the block's calls produce leaves the process before
        the block ends (the route loop produces a batch's deliveries after routing it), so
        a key that is never written was never used outside it.

        Applies to this thread's ``key_for`` calls; other threads' write at once as ever.
        Existing keys and tombstones are still read on every call (a shred takes effect at
        once). An exception inside the block writes nothing.

        Yields the ``LostKeys`` the block's end fills with the new keys that were *not*
        written: another worker wrote that case's key first (``kept`` holds it), or the
        case was shredded meanwhile (``kept`` holds None). What was sealed under such a key
        carries an escrow nothing opens: the route loop seals it again under the kept key
        (``hub.envelope.escrow.reescrow``).

        Raises:
            KeyStoreError: a ``deferred`` block is already open on this object (one route
                loop per keyring object), or the write failed.
        """
        if self._deferring is not None:
            raise KeyStoreError("case keys: deferred() is not reentrant; end the first block")
        deferring = _Deferred(thread=threading.get_ident())
        self._deferring = deferring
        lost = LostKeys()
        try:
            yield lost
        finally:
            self._deferring = None
        if deferring.keys:
            written = self._write_new(deferring.keys)
            for name, key in deferring.keys.items():
                if name not in written:
                    lost.ours[name] = key
                    lost.kept[name] = self._stored(name)
            if any(kept is not None for kept in lost.kept.values()):
                # what is sealed again under another worker's key is acknowledged only once
                # that key is durable too, whoever's group commit would have synced it
                self._mark_unsynced()

    def _mark_unsynced(self) -> None:
        """Tell the group commit the keyring has writes to make durable before the ack."""
        if self._group is not None:
            self._group.dirty(self.sync, self._dir)

    def _stored(self, name: str) -> bytes | None:
        """The key stored under a case pseudonym, or None (none, or shredded)."""
        with self._thread_lock:
            try:
                row = (
                    self._db()
                    .execute("SELECT key FROM case_keys WHERE name = ?", (name,))
                    .fetchone()
                )
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return None if row is None else _checked(name, row[0])

    def _deferred_here(self) -> _Deferred | None:
        deferring = self._deferring
        if deferring is None or deferring.thread != threading.get_ident():
            return None
        return deferring

    def _write_new(self, keys: dict[str, bytes]) -> set[str]:
        """Write new keys in one transaction; the names written (not shredded, not taken)."""
        written: set[str] = set()
        with self._thread_lock:
            db = self._db()
            try:
                with write_transaction(db):
                    for name, key in keys.items():
                        if db.execute(
                            "INSERT INTO case_keys (name, key) SELECT ?, ? WHERE NOT EXISTS "
                            "(SELECT 1 FROM shredded WHERE name = ?) "
                            "ON CONFLICT (name) DO NOTHING",
                            (name, key, name),
                        ).rowcount:
                            written.add(name)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        if written:  # committed; the group round fsyncs it
            self._mark_unsynced()
        return written

    def sync(self) -> None:
        """Make every commit so far durable (by any process): one fsync of the keyring's log.

        Called by the router's group commit (``hub.durable``) in a worker thread. In WAL mode
        a commit is complete once its frames are in the ``-wal`` file; with
        ``synchronous=NORMAL`` SQLite writes them without fsync, so one fsync of that file
        covers every commit before it. A checkpoint that moved them into the database file
        synced both files already (SQLite does so in NORMAL mode too).
        """
        wal = self._path.with_name(self._path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: already durable
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def is_shredded(self, case_ref: str) -> bool:
        """Whether the case has been shredded."""
        name = self.pseudonym(case_ref)
        if not self._exists():
            return False
        with self._thread_lock:
            try:
                return _is_tombstoned(self._db(), name)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def shred(self, case_ref: str) -> bool:
        """Destroy the case key and leave a tombstone; True if key material was destroyed.

        False means there was nothing to destroy (no key yet, or already shredded); the
        tombstone is written either way, so the case can never get a key afterwards. What
        this does and does not guarantee on disk: the module docstring.

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
                    f"{hold.by} ({hold.reason}); lift it with `hub holds lift` first"
                )
            db = self._db()
            try:
                db.execute("PRAGMA synchronous=FULL")  # a shred is durable when it returns
                try:
                    with write_transaction(db):
                        db.execute(
                            "INSERT OR IGNORE INTO shredded (name, shredded_at) VALUES (?, ?)",
                            (name, _now().isoformat()),
                        )
                        destroyed = (
                            db.execute("DELETE FROM case_keys WHERE name = ?", (name,)).rowcount > 0
                        )
                finally:
                    db.execute(f"PRAGMA synchronous={self._synchronous}")
                if destroyed:
                    # the zeroed page into the database file, the log's old copies dropped
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
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
            if self.is_shredded(case_ref):
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
        if not self._exists():
            return []
        with self._thread_lock:
            try:
                rows = self._db().execute("SELECT name FROM case_keys ORDER BY name").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        return [str(name) for (name,) in rows]

    def hold_on(self, name: str) -> LegalHold | None:
        """The legal hold on the case with pseudonym ``name``, if any."""
        return self._read_holds().get(name)

    def holds(self) -> list[LegalHold]:
        """Every current hold, oldest first."""
        return sorted(self._read_holds().values(), key=lambda h: h.placed_at)

    # -- the keyring -----------------------------------------------------------------------

    @property
    def _synchronous(self) -> str:
        return "NORMAL" if self._group is not None else "FULL"

    def _exists(self) -> bool:
        """Whether there is a keyring, or files of an older layout to move into one."""
        return self._conn is not None or self._path.exists() or self._dir.is_dir()

    def _db(self) -> sqlite3.Connection:
        """The open keyring (opened, created and migrated on first use; thread lock held)."""
        if self._conn is not None:
            return self._conn
        with self._locked():  # one process migrates; another then finds nothing to move
            if not self._path.exists():  # 0600 from the start: SQLite copies the mode to
                os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, _FILE_MODE))  # its logs
            if (self._path.stat().st_mode & 0o777) != _FILE_MODE:
                self._path.chmod(_FILE_MODE)
            try:
                conn = sqlite3.connect(
                    self._path, timeout=_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
                enable_wal(conn, within=_TIMEOUT_S)
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("PRAGMA temp_store=MEMORY")
                for statement in _DDL:
                    conn.execute(statement)
                self._migrate(conn)
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            self._conn = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Move per-case files of the older layout into the keyring, then destroy them.

        Committed (and fsynced) before any file goes, so a crash half way leaves each key in
        the keyring or in its file or both, and the next open finishes the job. A tombstone
        wins over a key, as it always did. A temporary file left by a crash while a key was
        being created (its event was never acknowledged) is destroyed.
        """
        tombstones: dict[str, str] = {}
        keys: dict[str, bytes] = {}
        leftovers: list[Path] = []
        for path in sorted(self._dir.iterdir()):
            name, suffix = path.stem, path.suffix
            if path.name.startswith(".") and path.name.endswith(".key.tmp"):
                leftovers.append(path)
            elif suffix == ".shredded" and _SAFE_NAME.fullmatch(name):
                tombstones[name] = _tombstone_time(path)
            elif suffix == ".key" and _SAFE_NAME.fullmatch(name):
                keys[name] = _checked(name, path.read_bytes())
        if not (tombstones or keys or leftovers):
            return
        conn.execute("PRAGMA synchronous=FULL")
        with write_transaction(conn):
            conn.executemany(
                "INSERT OR IGNORE INTO shredded (name, shredded_at) VALUES (?, ?)",
                tombstones.items(),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO case_keys (name, key) VALUES (?, ?)",
                [(n, k) for n, k in keys.items() if n not in tombstones],
            )
            conn.execute("DELETE FROM case_keys WHERE name IN (SELECT name FROM shredded)")
        for name in tombstones:
            (self._dir / f"{name}.shredded").unlink(missing_ok=True)
        for name in keys:
            _destroy(self._dir / f"{name}.key")
        for path in leftovers:
            _destroy(path)
        fsync_dir(self._dir)

    def _error(self, exc: sqlite3.Error) -> KeyStoreError:
        return KeyStoreError(f"case keyring {self._path}: unusable: {exc}")

    # -- holds -----------------------------------------------------------------------------

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

        The lock file stays open for the life of this object; the thread lock serialises
        this process's threads, which share the one descriptor (and the one connection).
        """
        with self._thread_lock:
            if self._lock_depth:  # nested (a shred opening the keyring): already held
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            if self._lock_fd is None:
                ensure_private_dir(self._root)
                ensure_private_dir(self._dir)
                self._lock_fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the keyring and the lock file (the next use reopens them)."""
        with self._thread_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __del__(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # type: ignore[arg-type]


@dataclass
class LostKeys:
    """The new keys a ``CaseKeys.deferred`` block made but did not write, by pseudonym.

    ``ours`` is the key the block sealed under; ``kept`` the one stored instead (another
    worker's), or None when the case was shredded meanwhile. Empty (false) in the usual case.
    """

    ours: dict[str, bytes] = field(default_factory=dict)
    kept: dict[str, bytes | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.ours)


@dataclass(slots=True)
class _Deferred:
    """The new keys of one ``CaseKeys.deferred`` block, and the thread it belongs to."""

    thread: int
    keys: dict[str, bytes] = field(default_factory=dict)

    def new(self, name: str) -> bytes:
        key = self.keys[name] = os.urandom(CASE_KEY_BYTES)
        return key


def _is_tombstoned(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM shredded WHERE name = ?", (name,)).fetchone() is not None


def _shredded(name: str) -> CaseShreddedError:
    return CaseShreddedError(
        f"case {name}: shredded; its key was destroyed and will not be re-created"
    )


def _checked(name: str, key: bytes) -> bytes:
    if len(key) != CASE_KEY_BYTES:
        raise KeyStoreError(f"case key {name}: expected {CASE_KEY_BYTES} bytes, got {len(key)}")
    return bytes(key)


def _tombstone_time(path: Path) -> str:
    """When an older-layout tombstone file says the case was shredded (else now)."""
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["shredded_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return _now().isoformat()


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
