"""The PostgreSQL twins of the hub's shared state: seen ids, registers, case keys and holds.

Each twin is its SQLite store's class on a PostgreSQL connection (``hub.workflows.pg_state``):
the same methods, the same SQL, the same answers (``tests/unit/test_state_contract.py``).
Only what the engines do differently is written here:

- ``PostgresSeenEvents.remember_many``: a routed batch's claims in one transaction of two
  statements, ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` over the whole batch (in key
  order, so two batches sharing ids never deadlock), then one read of the holders of the
  ids another record had claimed (none, usually). Two workers claiming one id at once: the
  second insert waits on the first's uncommitted row, then skips it, and reads its origin;
  exactly one record ever holds an id.
- ``PostgresCaseKeys``: keys, tombstones and legal holds in tables, each change of one case
  under a transaction-scoped advisory lock on it (the SQLite keyring's ``flock``), so a hold
  and a shred, or a new key and a shred, never interleave across hosts. A shred deletes the
  key's row; what that means on disk (MVCC, WAL, backups) is in the module docstring of
  ``hub.state`` and the scale-out page of the docs.

Imported only when ``HUB_STATE_URL`` names PostgreSQL: psycopg is the optional [postgres]
extra.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hub.agents.seen import Claim, SeenEvents, _joined, _stamp, source_of_origin
from hub.durable import GroupSync
from hub.errors import CaseShreddedError, KeyStoreError, LegalHoldError
from hub.federation.ownership import OwnershipRegister
from hub.federation.proofs import ProofRegister
from hub.keys.cases import _SAFE_NAME, CASE_KEY_BYTES, CaseKeys, LegalHold, _checked, _shredded
from hub.strategic.register import StrategicRegister
from hub.workflows.agreements import AgreementAlerts
from hub.workflows.asb.register import AsbRegister
from hub.workflows.bans import BanRegister
from hub.workflows.pg_state import PgSession, PostgresState, postgres_ddl
from hub.workflows.register import FlagRegister

__all__ = [
    "PostgresAgreementAlerts",
    "PostgresAsbRegister",
    "PostgresBanRegister",
    "PostgresCaseKeys",
    "PostgresFlagRegister",
    "PostgresProofRegister",
    "PostgresSeenEvents",
    "PostgresStrategicRegister",
]


class PostgresFlagRegister(PostgresState, FlagRegister):
    """``FlagRegister`` in PostgreSQL."""


class PostgresBanRegister(PostgresState, BanRegister):
    """``BanRegister`` in PostgreSQL."""


class PostgresAgreementAlerts(PostgresState, AgreementAlerts):
    """``AgreementAlerts`` in PostgreSQL."""


class PostgresAsbRegister(PostgresState, AsbRegister):
    """``AsbRegister`` (ASB Case Review) in PostgreSQL."""


class PostgresStrategicRegister(PostgresState, StrategicRegister):
    """``StrategicRegister`` (s17A submissions and releases) in PostgreSQL."""


class PostgresOwnershipRegister(PostgresState, OwnershipRegister):
    """``OwnershipRegister`` (cases a peer hub took, or this one took) in PostgreSQL."""


class PostgresProofRegister(PostgresState, ProofRegister):
    """``ProofRegister`` (peers' verified hand-over proofs) in PostgreSQL."""


_SEEN_DDL = (
    postgres_ddl(
        """CREATE TABLE IF NOT EXISTS seen_events (
        event_id TEXT NOT NULL,
        source TEXT NOT NULL,
        origin TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        recipients TEXT,
        PRIMARY KEY (event_id, source)
    )"""
    ),
    "CREATE INDEX IF NOT EXISTS seen_events_seen_at ON seen_events (seen_at)",
)
# rows in the arrays' order (WITH ORDINALITY ... ORDER BY: the order the batch was sorted in)
_CLAIM = """INSERT INTO seen_events (event_id, source, origin, seen_at, recipients)
    SELECT e, s, o, t, r
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
        WITH ORDINALITY AS claims (e, s, o, t, r, n)
    ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING event_id, source, origin"""
_HOLDERS = """SELECT event_id, source, origin FROM seen_events
    WHERE (event_id, source) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"""


class PostgresSeenEvents(PostgresState, SeenEvents):
    """``SeenEvents`` in PostgreSQL: a claim is exact across every worker on every host."""

    pg_ddl = _SEEN_DDL

    def remember_many(self, claims: Sequence[Claim]) -> list[str]:
        """``SeenEvents.remember_many``: one transaction, two statements for the whole batch.

        Raises:
            RegisterError: the database cannot be written.
        """
        if not claims:
            return []
        rows = [
            (
                claim.event_id,
                source_of_origin(claim.origin) if claim.source is None else claim.source,
                claim.origin,
                _stamp(claim.at),
                _joined(claim.recipients),
            )
            for claim in claims
        ]
        # inserted in key order, whatever the batch's: two workers claiming overlapping ids
        # then lock the rows in one order, never each waiting on the other (a deadlock);
        # the sort is stable, so of one id twice in a batch the first claim still wins
        ordered = sorted(rows, key=lambda row: (row[0], row[1]))
        with self._tx() as conn:
            columns = [list(c) for c in zip(*ordered, strict=True)]
            held = {(e, s): o for e, s, o in conn.raw.execute(_CLAIM, columns).fetchall()}
            missing = [(e, s) for e, s, *_ in rows if (e, s) not in held]
            if missing:  # claimed by another record before this batch (or a reprocess)
                ids, sources = (list(c) for c in zip(*missing, strict=True))
                held.update(((e, s), o) for e, s, o in conn.raw.execute(_HOLDERS, (ids, sources)))
        return [str(held[(e, s)]) for e, s, *_ in rows]


_KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS case_keys (name TEXT PRIMARY KEY, key BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS shredded (name TEXT PRIMARY KEY, shredded_at TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS legal_holds (
        name TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at TEXT NOT NULL
    )""",
)
_LOCK_CASE = "SELECT pg_advisory_xact_lock(hashtext('hub.case:' || %s))"
#: ``_LOCK_CASE`` for many cases, taken in the order of the lock ids themselves (the
#: subquery's, which a subquery with ORDER BY keeps: it is not flattened). Not in name order:
#: the ids are 32-bit hashes, so two names can share one, and ordered by name a worker taking
#: p then q and another q then r, hash(r) == hash(p), wait on each other in a cycle
_LOCK_CASES = (
    "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtext('hub.case:' || n) "
    "AS h FROM unnest(%s::text[]) AS n ORDER BY h) AS ordered"
)
#: new keys of cases neither shredded nor keyed by another worker; returns those written
_INSERT_CASES = (
    "INSERT INTO case_keys (name, key) SELECT n, k FROM unnest(%s::text[], %s::bytea[]) "
    "AS new (n, k) WHERE NOT EXISTS (SELECT 1 FROM shredded WHERE name = new.n) "
    "ON CONFLICT DO NOTHING RETURNING name"
)


class PostgresCaseKeys(CaseKeys):
    """``CaseKeys`` in PostgreSQL: case keys, tombstones and legal holds, for every host.

    Args:
        url: the state database (``HUB_STATE_URL``).
        pseudonymise: case reference to pseudonym, as for ``CaseKeys``.
        group: the router's group commit: a new key is committed at once, made durable by
            the group's round before its event is acknowledged (``hub.workflows.pg_state``).
    """

    def __init__(  # the base's attributes this class uses, and none of its files
        self, url: str, *, pseudonymise: Callable[[str], str], group: GroupSync | None = None
    ) -> None:
        self._pseudonymise = pseudonymise
        self._group = group
        self._deferring = None
        self._pg = PgSession(
            url,
            label="case keyring",
            error=KeyStoreError,
            ddl=[postgres_ddl(s) for s in _KEYS_DDL],
            group=group,
        )
        self._root = self._path = Path(self._pg.display_url)  # for messages only

    def __repr__(self) -> str:
        return f"PostgresCaseKeys({self._pg.display_url!r})"

    def key_for(self, case_ref: str) -> bytes:
        """``CaseKeys.key_for``: one indexed read; a new key under the case's lock."""
        name = self.pseudonym(case_ref)
        deferring = self._deferred_here()
        if deferring is not None and name in deferring.keys:
            return deferring.keys[name]
        with self._pg.read() as conn:
            row = conn.execute("SELECT key FROM case_keys WHERE name = ?", (name,)).fetchone()
            if row is None and deferring is not None and _tombstoned(conn, name):
                raise _shredded(name)
        if row is not None:
            return _checked(name, row[0])
        if deferring is not None:  # written when the block ends (``CaseKeys.deferred``)
            return deferring.new(name)
        key = os.urandom(CASE_KEY_BYTES)
        with self._pg.tx() as conn:  # marks the group commit dirty: synced before the ack
            conn.raw.execute(_LOCK_CASE, (name,))
            if _tombstoned(conn, name):
                raise _shredded(name)
            # DO NOTHING, not a no-op update: that would leave a dead copy of the key behind
            conn.execute(
                "INSERT INTO case_keys (name, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, key),
            )
            row = conn.execute("SELECT key FROM case_keys WHERE name = ?", (name,)).fetchone()
        if row is None:  # not possible under the lock; said plainly if it ever is
            raise KeyStoreError(f"case key {name}: written, then not found")
        return _checked(name, row[0])  # ours, or the key another worker created first

    def _stored(self, name: str) -> bytes | None:
        """``CaseKeys._stored``: the key stored under a case pseudonym, or None."""
        with self._pg.read() as conn:
            row = conn.execute("SELECT key FROM case_keys WHERE name = ?", (name,)).fetchone()
        return None if row is None else _checked(name, row[0])

    def _mark_unsynced(self) -> None:
        """``CaseKeys._mark_unsynced``: the round's ``sync`` flushes the server's WAL."""
        if self._group is not None:
            self._group.dirty(self.sync, None)

    def _write_new(self, keys: dict[str, bytes]) -> set[str]:
        """``CaseKeys._write_new``: one transaction, every case's lock taken in lock-id order.

        In one order, so two workers writing overlapping batches cannot deadlock; under
        the locks a shred cannot slip between the tombstone check and the insert.
        """
        names = sorted(keys)
        with self._pg.tx() as conn:  # marks the group commit dirty: synced before the ack
            conn.raw.execute(_LOCK_CASES, (names,))
            rows = conn.raw.execute(_INSERT_CASES, (names, [keys[n] for n in names])).fetchall()
        return {str(name) for (name,) in rows}

    def sync(self) -> None:
        """Make every commit so far durable (``PgSession.sync``)."""
        self._pg.sync()

    def is_shredded(self, case_ref: str) -> bool:
        """Whether the case has been shredded."""
        name = self.pseudonym(case_ref)
        with self._pg.read() as conn:
            return _tombstoned(conn, name)

    def shred_pseudonym(self, name: str) -> bool:
        """``CaseKeys.shred_pseudonym``: tombstone written and key row deleted in one commit.

        The commit is durable when this returns (``synchronous_commit=on`` for it, whatever
        the connection's group commit). No query, dump or replica can return the key after
        it. Then ``VACUUM case_keys`` removes the dead tuple so its space is reused soon;
        PostgreSQL has no ``secure_delete``, so until overwritten its bytes may remain in the
        page's free space, in WAL segments not yet recycled and in base backups taken before
        (the docs' Scaling out page: what "destroyed" means there).

        Raises:
            LegalHoldError: the case is under a legal hold.
            KeyStoreError: ``name`` is not a case pseudonym.
        """
        if not _SAFE_NAME.fullmatch(name):
            raise KeyStoreError(f"case pseudonym: expected a file-name-safe id, got {name!r}")
        with self._pg.tx() as conn:
            conn.raw.execute("SET LOCAL synchronous_commit = on")
            conn.raw.execute(_LOCK_CASE, (name,))
            hold = _hold(conn, name)
            if hold is not None:
                raise LegalHoldError(
                    f"case {name}: under legal hold since {hold.placed_at:%Y-%m-%d} by "
                    f"{hold.by} ({hold.reason}); lift it with `hub holds lift` first"
                )
            conn.execute(
                "INSERT INTO shredded (name, shredded_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, _now().isoformat()),
            )
            destroyed = conn.execute("DELETE FROM case_keys WHERE name = ?", (name,)).rowcount > 0
        if destroyed:
            with self._pg.read() as conn:  # autocommit: VACUUM cannot run in a transaction
                conn.raw.execute("VACUUM case_keys")
        return destroyed

    def add_hold(self, case_ref: str, reason: str, by: str) -> LegalHold:
        """``CaseKeys.add_hold``, under the case's lock."""
        if not reason.strip() or not by.strip():
            raise LegalHoldError("legal hold: expected a reason and who places it, got empty")
        name = self.pseudonym(case_ref)
        hold = LegalHold(case=name, reason=reason.strip(), by=by.strip(), placed_at=_now())
        with self._pg.tx() as conn:
            conn.raw.execute(_LOCK_CASE, (name,))
            if _tombstoned(conn, name):
                raise CaseShreddedError(f"case {name}: already shredded; nothing to hold")
            held = _hold(conn, name)
            if held is not None:
                raise LegalHoldError(f"case {name}: already under hold by {held.by}")
            conn.execute(
                "INSERT INTO legal_holds VALUES (?, ?, ?, ?)",
                (name, hold.reason, hold.by, hold.placed_at.isoformat()),
            )
        return hold

    def lift_hold(self, case_ref: str, by: str) -> LegalHold:
        """``CaseKeys.lift_hold``, under the case's lock."""
        if not by.strip():
            raise LegalHoldError("lift legal hold: expected who lifts it, got empty")
        name = self.pseudonym(case_ref)
        with self._pg.tx() as conn:
            conn.raw.execute(_LOCK_CASE, (name,))
            row = conn.execute(
                "DELETE FROM legal_holds WHERE name = ? RETURNING *", (name,)
            ).fetchone()
        if row is None:
            raise LegalHoldError(f"case {name}: expected a legal hold to lift, found none")
        return _legal_hold(row)

    def live_cases(self) -> list[str]:
        """Pseudonyms of every case that still has a key (not shredded), sorted."""
        with self._pg.read() as conn:
            rows = conn.execute("SELECT name FROM case_keys ORDER BY name").fetchall()
        return [str(name) for (name,) in rows]

    def hold_on(self, name: str) -> LegalHold | None:
        """The legal hold on the case with pseudonym ``name``, if any."""
        with self._pg.read() as conn:
            return _hold(conn, name)

    def holds(self) -> list[LegalHold]:
        """Every current hold, oldest first."""
        with self._pg.read() as conn:
            rows = conn.execute("SELECT * FROM legal_holds ORDER BY placed_at, name").fetchall()
        return [_legal_hold(r) for r in rows]

    def close(self) -> None:
        """Close the connection."""
        self._pg.close()

    def __del__(self) -> None:
        """No lock file to close (``CaseKeys.__del__``); the session closes its connection."""


def _tombstoned(conn: Any, name: str) -> bool:
    return conn.execute("SELECT 1 FROM shredded WHERE name = ?", (name,)).fetchone() is not None


def _hold(conn: Any, name: str) -> LegalHold | None:
    row = conn.execute("SELECT * FROM legal_holds WHERE name = ?", (name,)).fetchone()
    return None if row is None else _legal_hold(row)


def _legal_hold(row: tuple[Any, ...]) -> LegalHold:
    return LegalHold(
        case=str(row[0]),
        reason=str(row[1]),
        by=str(row[2]),
        placed_at=dt.datetime.fromisoformat(str(row[3])),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
