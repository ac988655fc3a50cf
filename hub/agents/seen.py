"""Event ids the router has accepted, and the record that first carried each: on disk.

The router quarantines an event whose id was already accepted from another record
(``duplicate_event_id``) and routes the same record again when it is reprocessed after a
crash (same ids). For that it asks, for every event, which record (``topic/partition@offset``)
first carried the id. The answer lives here, in SQLite in the data dir (WAL, like the
workflow registers), rather than in a faust table:

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

from datetime import UTC, datetime, timedelta

from hub.audit.store import AuditStore
from hub.models import AuditRecord
from hub.workflows.sqlite_state import SQLiteState

__all__ = ["FORGET_MARGIN", "PRUNE_CHUNK", "SeenEvents", "forget_before"]

#: ids are kept this long before the oldest audit record still stored: records reach the log
#: a little out of time order (several workers, the audit topic between them, an audit outage
#: bounded by ``HUB_AUDIT_OUTAGE_LIMIT``), never by a day
FORGET_MARGIN = timedelta(days=1)

#: ids deleted per transaction by ``prune``: a router's ``remember`` waiting for the write
#: lock waits for one chunk (a few milliseconds), never for the whole prune
PRUNE_CHUNK = 2000

_DDL = (
    """CREATE TABLE IF NOT EXISTS seen_events (
        event_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        seen_at TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS seen_events_seen_at ON seen_events (seen_at)",
)


def _stamp(when: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds always present), so text order is time order.

    A naive time is taken as UTC, as the hub's clock file does.
    """
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")


class SeenEvents(SQLiteState):
    """The seen-event store in one SQLite file; shared by the workers of one hub.

    Safe to share between threads of one process; several processes may open the same file
    (SQLite's write lock serialises ``remember``, so exactly one record claims an id).
    """

    label = "seen-event store"
    ddl = _DDL

    def first(self, event_id: str) -> str | None:
        """The origin of the record that first carried ``event_id``, or None if never seen.

        One indexed read; the router calls it on the event loop for every event.

        Raises:
            RegisterError: the file cannot be read.
        """
        with self._read() as conn:
            row = conn.execute(
                "SELECT origin FROM seen_events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def remember(self, event_id: str, *, origin: str, at: datetime) -> str:
        """Claim ``event_id`` for ``origin``; return the origin that holds it.

        That is ``origin`` itself when this call claimed it or when the same record claimed
        it before (a reprocess). Anything else means another record (another worker, at the
        same moment) claimed it first. The claim and the read are one transaction, so two
        claimants never both win.

        Raises:
            RegisterError: the file cannot be written.
        """
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO seen_events (event_id, origin, seen_at) VALUES (?, ?, ?)",
                (event_id, origin, _stamp(at)),
            )
            row = conn.execute(
                "SELECT origin FROM seen_events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return str(row[0])

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
                    "DELETE FROM seen_events WHERE event_id IN "
                    "(SELECT event_id FROM seen_events WHERE seen_at < ? LIMIT ?)",
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
