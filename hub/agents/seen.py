"""Events the router has accepted, and the record that first carried each: on disk.

An event is identified by its source and id (CloudEvents 1.0): the same id from two parties
is two events, each accepted once. The router quarantines an event whose (source, id) was
already accepted from another record (``duplicate_event_id``) and routes the same record
again when it is reprocessed after a crash (same ids). For that it asks, for every event,
which record (``topic/partition/offset``) first carried it. The answer lives here, in SQLite
in the data dir (WAL, like the workflow registers), rather than in a faust table:

- it is not held in memory, so a worker's memory does not grow with traffic;
- it needs no changelog topic, so nothing has to be recovered from the broker after a
  restart (the in-memory broker loses its topics, and faust's recovery of a table whose
  changelog vanished could wait for ever);
- every worker process of one hub opens the same file, so a lookup is exact across
  workers: a faust table is partitioned by stream partition, so the same id arriving on
  two partitions owned by two workers was looked up in two different places.

Durability: the router's ``remember`` commits without fsync and marks the group commit
(``hub.durable``) dirty; the event is acknowledged only after the round that syncs it, so a
committed offset never covers an id the store could forget in a machine crash.

Retention: ids are kept exactly as long as the audit records of their events. A replayed id
is recognised here, or not at all: the audit store ignores a record id it already holds, so a
replay routed as new would be delivered again while its audit records silently merged with
the original's. Keeping the ids while the audit records exist means every replay the audit
log could be asked about is quarantined and audited under its own origin; once the records
are pruned, the id has nothing left to protect. So the cut-off follows what the audit log
has actually pruned (``forget_before``), not the protocol's ``audit_retention`` on its own:
a prune stops at the first record of a case under legal hold and keeps everything after it,
and prunes run when an IG officer runs ``hub audit prune``. The leader worker forgets ids
hourly (``create_app``'s expiry sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub.audit.store import AuditStore
from hub.broker import topics
from hub.durable import GroupSync
from hub.envelope import wire
from hub.models import AuditRecord, split_event_key
from hub.workflows.sqlite_state import SQLiteState

__all__ = [
    "FORGET_MARGIN",
    "PRUNE_CHUNK",
    "Claim",
    "SeenEvents",
    "delivered_lookup",
    "forget_before",
]

#: ids are kept this long before the oldest audit record still stored: records reach the log
#: a little out of time order (several workers, the audit topic between them, an audit outage
#: bounded by ``HUB_AUDIT_OUTAGE_LIMIT``), never by a day
FORGET_MARGIN = timedelta(days=1)

#: ids deleted per transaction by ``prune``: a router's ``remember`` waiting for the write
#: lock waits for one chunk (a few milliseconds), never for the whole prune
PRUNE_CHUNK = 2000

# Keyed by (event_id, source): the identity is (source, id), and an id-first key also serves
# a lookup by bare id (any source) from its prefix, with no second index to write.
_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
        event_id TEXT NOT NULL,
        source TEXT NOT NULL,
        origin TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        recipients TEXT,
        PRIMARY KEY (event_id, source)
    ) WITHOUT ROWID"""
#: ids per ``IN (...)`` of a batch lookup: far under SQLite's and PostgreSQL's parameter limits
_IN_CHUNK = 500
_INDEX = "CREATE INDEX IF NOT EXISTS seen_events_seen_at ON seen_events (seen_at)"
_DDL = (_TABLE.format(name="seen_events"),)


def source_of_origin(origin: str) -> str:
    """The ``ce_source`` of the party owning the inbound topic of an origin string.

    ``topic/partition/offset``; a topic name holds no ``/``. The router accepts an event only
    from its owner's topic (``spoofed_source`` otherwise), so the topic names the source.
    An origin off any inbound topic has no source: ``""``.
    """
    return source_of_topic(origin.partition("/")[0])


def source_of_topic(topic: str) -> str:
    """The ``ce_source`` of the party owning an inbound topic; ``""`` for any other topic."""
    owner = topics.owner_of(topic)
    return wire.source_for(owner) if owner else ""


def _stamp(when: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds always present), so text order is time order.

    A naive time is taken as UTC, as the hub's clock file does.
    """
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Claim:
    """One event claimed for the record that carried it (``SeenEvents.remember``)."""

    event_id: str
    origin: str
    at: datetime
    source: str | None = None
    recipients: Collection[str] | None = None


class SeenEvents(SQLiteState):
    """The seen-event store in one SQLite file; shared by the workers of one hub.

    Safe to share between threads of one process; several processes may open the same file
    (SQLite's write lock serialises ``remember``, so exactly one record claims an id).
    """

    label = "seen-event store"
    ddl = _DDL

    def __init__(self, path: Path, *, group: GroupSync | None = None) -> None:
        super().__init__(path, group=group)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a store written by an earlier hub to this schema; once, atomically.

        Before identity was (source, id), the table was keyed by event id alone.

        Each old row's source is derived from its
        origin: the router accepted it only from its owner's ``hub.in.<party>`` topic, so the
        topic names the publisher (``source_of_origin``). Copy, drop, rename in one
        ``BEGIN IMMEDIATE`` transaction: several workers opening the file at once serialise
        here, and the second finds the work done. A store already keyed by both takes no
        write lock at all. A store keyed by both but without the ``recipients`` column gets
        it (NULL: not known, so the audit store answers for those events).
        """
        if self._columns() >= {"source", "recipients"}:
            with self._read() as conn:
                conn.execute(_INDEX)
            return
        with self._tx() as conn:
            columns = self._columns(locked=True)
            if "source" in columns and "recipients" not in columns:
                conn.execute("ALTER TABLE seen_events ADD COLUMN recipients TEXT")
            elif "source" not in columns:
                conn.create_function("hub_source_of", 1, source_of_origin, deterministic=True)
                conn.execute(_TABLE.format(name="seen_events_v2"))
                conn.execute(
                    "INSERT INTO seen_events_v2 (event_id, source, origin, seen_at) "
                    "SELECT event_id, hub_source_of(origin), origin, seen_at FROM seen_events"
                )
                conn.execute("DROP TABLE seen_events")
                conn.execute("ALTER TABLE seen_events_v2 RENAME TO seen_events")
            conn.execute(_INDEX)

    def _columns(self, *, locked: bool = False) -> set[str]:
        if locked:  # inside this connection's transaction: the lock is already held
            rows = self._conn.execute("PRAGMA table_info(seen_events)").fetchall()
        else:
            with self._read() as conn:
                rows = conn.execute("PRAGMA table_info(seen_events)").fetchall()
        return {str(row[1]) for row in rows}

    def first(self, key: str) -> str | None:
        """The origin of the record that first carried an event, or None if never seen.

        ``key`` names the event by source and id (``hub.models.event_key``): the router's
        lookup. A bare id (no source) answers for any source, the earliest first: for tools
        that know only an id. One indexed read; the router calls it on the event loop for
        every event.

        Raises:
            RegisterError: the file cannot be read.
        """
        source, event_id = split_event_key(key)
        with self._read() as conn:
            if source is None:
                row = conn.execute(
                    "SELECT origin FROM seen_events WHERE event_id = ? ORDER BY seen_at LIMIT 1",
                    (event_id,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT origin FROM seen_events WHERE event_id = ? AND source = ?",
                    (event_id, source),
                ).fetchone()
        return None if row is None else str(row[0])

    def first_many(self, keys: Iterable[str]) -> dict[str, str]:
        """``first`` for a batch of sourced keys at once: key -> origin, for those seen.

        The route loop asks once per batch instead of once per event (one round trip on
        PostgreSQL, not one per event). Keys without a source are left out: ask ``first``.

        Raises:
            RegisterError: the file cannot be read.
        """
        wanted: dict[str, dict[str, str]] = {}
        for key in keys:
            source, event_id = split_event_key(key)
            if source is not None:
                wanted.setdefault(event_id, {})[source] = key
        found: dict[str, str] = {}
        ids = list(wanted)
        with self._read() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))  # placeholders only: values are bound
                rows = conn.execute(
                    f"SELECT event_id, source, origin FROM seen_events WHERE event_id IN ({marks})",  # noqa: S608
                    chunk,
                ).fetchall()
                for event_id, source, origin in rows:
                    hit = wanted[str(event_id)].get(str(source))
                    if hit is not None:
                        found[hit] = str(origin)
        return found

    def remember(
        self,
        event_id: str,
        *,
        origin: str,
        at: datetime,
        source: str | None = None,
        recipients: Collection[str] | None = None,
    ) -> str:
        """Claim an event, (``source``, ``event_id``), for ``origin``; return the origin holding it.

        ``source`` defaults to the owner of the origin's inbound topic, which is the event's
        source for every event the router accepts (``source_of_origin``).

        ``recipients`` are the parties the event is delivered to (``RouteResult.recipients``):
        kept in the same row, at no extra write, so any worker of the hub can tell who may
        acknowledge the event (``delivered``) before the audit store has the deliveries. The
        claim is written before any delivery is produced, so a recipient can never
        acknowledge faster than this row appears. None: not known (the audit store answers).

        That is ``origin`` itself when this call claimed it or when the same record claimed
        it before (a reprocess). Anything else means another record (another worker, at the
        same moment) claimed it first. The claim and the read are one transaction, so two
        claimants never both win.

        Raises:
            RegisterError: the file cannot be written.
        """
        claim = Claim(event_id=event_id, origin=origin, at=at, source=source, recipients=recipients)
        return self.remember_many([claim])[0]

    def remember_many(self, claims: Sequence[Claim]) -> list[str]:
        """``remember`` for each claim, in one transaction: a routed batch's, in one commit.

        Returns the origin holding each claimed event, in the order of ``claims``.

        Raises:
            RegisterError: the file cannot be written.
        """
        if not claims:
            return []
        holders: list[str] = []
        with self._tx() as conn:
            for claim in claims:
                source = source_of_origin(claim.origin) if claim.source is None else claim.source
                conn.execute(
                    "INSERT OR IGNORE INTO seen_events (event_id, source, origin, seen_at, "
                    "recipients) VALUES (?, ?, ?, ?, ?)",
                    (
                        claim.event_id,
                        source,
                        claim.origin,
                        _stamp(claim.at),
                        _joined(claim.recipients),
                    ),
                )
                row = conn.execute(
                    "SELECT origin FROM seen_events WHERE event_id = ? AND source = ?",
                    (claim.event_id, source),
                ).fetchone()
                holders.append(str(row[0]))
        return holders

    def delivered(self, event_id: str, party: str) -> set[tuple[str, str | None]]:
        """(publisher, None) of each accepted event with this id that was delivered to ``party``.

        The router's ``delivered`` lookup, exact across the hub's workers (one shared file).
        Only rows claimed with their recipients answer; the event type is not kept (None).
        One indexed read (the key's prefix is the event id).

        Raises:
            RegisterError: the file cannot be read.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT source, recipients FROM seen_events "
                "WHERE event_id = ? AND recipients IS NOT NULL",
                (event_id,),
            ).fetchall()
        return {
            (str(source).removeprefix("/parties/"), None)
            for source, recipients in rows
            if party in str(recipients).split(",")
        }

    def prune(self, before: datetime, *, chunk: int = PRUNE_CHUNK) -> int:
        """Forget ids first seen before ``before``; return how many.

        Deletes ``chunk`` ids per transaction so the write lock is never held long: the
        routers keep claiming ids between chunks.

        Raises:
            RegisterError: the file cannot be written (ids deleted by earlier chunks stay
                deleted).
            ValueError: ``chunk`` is not positive.
        """
        if chunk < 1:
            raise ValueError(f"prune chunk: expected at least 1, got {chunk}")
        cut = _stamp(before)
        total = 0
        while True:
            with self._tx() as conn:
                deleted = conn.execute(
                    "DELETE FROM seen_events WHERE (event_id, source) IN "
                    "(SELECT event_id, source FROM seen_events WHERE seen_at < ? LIMIT ?)",
                    (cut, chunk),
                ).rowcount
            total += deleted
            if deleted < chunk:
                return total

    def count(self) -> int:
        """How many ids are remembered.

        Raises:
            RegisterError: the file cannot be read.
        """
        with self._read() as conn:
            row = conn.execute("SELECT COUNT(*) FROM seen_events").fetchone()
        return int(row[0])


def _joined(parties: Collection[str] | None) -> str | None:
    """Party ids as one column value: sorted, comma-separated (a party id holds no comma)."""
    return None if parties is None else ",".join(sorted(parties))


def delivered_lookup(
    seen: SeenEvents, older: Callable[[str, str], Collection[tuple[str, str | None]]] | None
) -> Callable[[str, str], Collection[tuple[str, str | None]]]:
    """The router's ``delivered`` lookup: the seen-event store and ``older`` (the audit store).

    The seen store knows every event claimed with its recipients, on every worker, from
    before its deliveries were produced; the audit store (``hub.audit.lookups``) answers for
    events claimed without them (before this column, or by a caller that does not pass them)
    and knows each event's type, which the claim does not keep. Both are asked; an event
    only the claims know has no type yet (None).
    """

    def lookup(event_id: str, party: str) -> Collection[tuple[str, str | None]]:
        found: dict[str, str | None] = dict(seen.delivered(event_id, party))
        if older is not None:
            found.update(older(event_id, party))
        return found.items()

    return lookup


def forget_before(store: AuditStore) -> datetime | None:
    """When seen ids may be forgotten: ``FORGET_MARGIN`` before the oldest kept audit record.

    None while the audit log has pruned nothing: every record is kept, so every id is. After
    a prune, the oldest kept record is the one at the pruned size (a prune appends its own
    ``pruned`` record before deleting, so one is always there); ids first seen a margin
    before it belong to events whose records are gone.

    Raises:
        AuditError: the store cannot be read.
    """
    prunes = store.prunes()
    if not prunes:
        return None
    pruned = prunes[-1].size
    oldest = store.leaves(pruned, pruned + 1)
    if not oldest:  # nothing stored past the prune: only its cut-off is known
        return prunes[-1].before - FORGET_MARGIN
    return AuditRecord.model_validate_json(oldest[0]).time - FORGET_MARGIN
