"""The audit store: an append-only table of ``AuditRecord``s, behind one protocol.

SQLite in the data dir serves a single-host partnership and the demo; PostgreSQL
(``HUB_AUDIT_URL=postgresql://...``) serves a hub with several hosts. Both keep records in
append order (``seq``), which the Merkle log (RFC 9162) is built over, and both ignore a
record id they already hold, because at-least-once processing replays events after a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from hub.audit.retention import PrunedPrefix
from hub.audit.sqlite import LOOKUP_CACHE_KIB, SQLiteAuditStore
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord
from hub.settings import HubSettings

__all__ = ["AuditStore", "open_store", "sqlite_path"]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgresql+", "postgres://")


class AuditStore(Protocol):
    """Where audit records are kept; implementations must be safe to reopen concurrently."""

    def append(self, records: Sequence[AuditRecord]) -> int:
        """Append records in order, skipping record ids already stored.

        Returns:
            How many records were newly stored.
        """
        ...

    def query(
        self,
        *,
        event_id: str | None = None,
        party: str | None = None,
        subject_pseudonym: str | None = None,
        case_pseudonym: str | None = None,
        decision: AuditDecision | str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Records matching every given filter, in append order.

        Args:
            event_id: records about this event.
            party: records where this party is the recipient or the publisher.
            subject_pseudonym: records naming this subject pseudonym.
            case_pseudonym: records about this case pseudonym.
            decision: records with this decision.
            since: records written at or after this time (naive means UTC).
            limit: at most this many records (the earliest first).
        """
        ...

    def counts(self) -> dict[str, int]:
        """Number of records per decision, every decision present (zero if none)."""
        ...

    def has_event(self, event_id: str) -> bool:
        """Whether any record about this event is stored."""
        ...

    def case_recipients(self, case_pseudonym: str) -> set[str]:
        """The parties delivered any event of the case (its ``delivered`` records' recipients).

        What the router asks for every event of a type an Art 19 correction covers: the
        parties alone, not the records (a case's history grows; rebuilding each record to
        read one field cost more with every event of it).
        """
        ...

    def stored_ids(self, record_ids: Sequence[str]) -> set[str]:
        """Which of these record ids the store holds (committed), from one snapshot.

        One query through the ``record_id`` unique index, in chunks for long lists, so a
        caller can gate delivery on what the store has actually written.
        """
        ...

    # --- Merkle log (RFC 9162) support: leaf i is the i-th stored record in append order ---
    # Each of these costs what it returns, not the size of the log (index lookups and
    # ranges), so signing a checkpoint stays flat and ``verify`` linear as the log grows.

    def size(self) -> int:
        """The size of the Merkle tree: leaves pruned under audit retention plus rows stored."""
        ...

    def leaves(self, start: int, end: int) -> list[bytes]:
        """The ``canonical`` bytes of leaves ``start`` .. ``end - 1`` (0-based, append order).

        Leaf i is the record with the (i+1-K)-th smallest ``seq``, K the pruned size. Returns
        fewer than ``end - start`` items only when the store holds fewer records. Reading on
        from where the previous read stopped, or from K, follows ``seq`` order whatever the
        store's leaf numbering says, so a walk of the log from K sees exactly what is stored.

        Raises:
            AuditError: ``start`` is below the pruned size (those records are gone).
        """
        ...

    def record_index(self, record_id: str) -> int | None:
        """The leaf index of a record (K plus rows with a smaller ``seq``), or ``None``."""
        ...

    def prunes(self) -> list[PrunedPrefix]:
        """Every prune so far, oldest first; the last one's ``size`` is the pruned size K."""
        ...

    def prune(self, prefix: PrunedPrefix) -> int:
        """Delete the rows of leaves ``[K, prefix.size)`` and keep ``prefix``, atomically.

        The caller (``AuditLog.prune``) computed ``prefix.frontier`` from those rows; the
        store only checks the sizes. Deleted rows are overwritten where the engine allows
        (SQLite ``secure_delete``), since they hold personal data.

        Returns:
            How many rows were deleted.

        Raises:
            AuditError: ``prefix.size`` is not above K or beyond the stored records.
        """
        ...

    def mismatched_rows(self, start: int, end: int) -> list[int]:
        """Leaf indices in ``[start, end)`` whose stored columns disagree with ``canonical``.

        A row agrees when every column (and every subject index row) the store would write
        for ``AuditRecord.model_validate_json(canonical)`` is exactly what it holds, and
        ``canonical`` is ``canonical_bytes`` of that record. Used by ``hub audit verify`` to
        find hand edits that the Merkle root, which hashes only ``canonical``, cannot see.
        """
        ...

    def checked_leaves(self, start: int, end: int) -> tuple[list[bytes], list[int]]:
        """``leaves(start, end)`` and ``mismatched_rows`` over the same rows, from one read.

        What ``hub audit verify`` walks the log with: each row is read and checked once.
        """
        ...

    def save_checkpoint(self, tree_size: int, note: str) -> None:
        """Keep a signed checkpoint note (C2SP tlog-checkpoint) of the tree at ``tree_size``.

        Saving the same note twice keeps one copy.
        """
        ...

    def checkpoints(self) -> list[tuple[int, str]]:
        """Every saved checkpoint as ``(tree_size, note)``, in the order saved."""
        ...

    def newest_checkpoint(self) -> tuple[int, str] | None:
        """The last checkpoint saved, or ``None``: one row, however many were signed.

        What signing a checkpoint checks against, every few seconds for as long as the hub
        runs (``checkpoints`` reads them all, for ``verify``).
        """
        ...

    def close(self) -> None:
        """Release the connection; further calls are errors."""
        ...


def sqlite_path(settings: HubSettings) -> Path | None:
    """The SQLite file the settings select, or ``None`` if they select another backend.

    ``audit_url`` unset or a bare ``sqlite:///`` means ``<data_dir>/audit.sqlite3``;
    ``sqlite:///rel/path`` and ``sqlite:////abs/path`` follow the SQLAlchemy convention.
    """
    url = settings.audit_url
    if url is None or url == _SQLITE_PREFIX:
        return settings.audit_db_path
    if url.startswith(_SQLITE_PREFIX):
        return Path(url.removeprefix(_SQLITE_PREFIX))
    return None


def open_store(settings: HubSettings, *, lookups: bool = False) -> AuditStore:
    """Open (creating if needed) the audit store the settings select.

    ``lookups``: a connection for point lookups only (the router's), with SQLite's small
    default page cache rather than the writer's (``hub.audit.sqlite.LOOKUP_CACHE_KIB``).

    Raises:
        AuditError: the URL names an unsupported backend, or the store cannot be opened.
    """
    path = sqlite_path(settings)
    if path is not None:
        if lookups:
            return SQLiteAuditStore(
                path, busy_timeout=settings.audit_busy_timeout, cache_kib=LOOKUP_CACHE_KIB
            )
        return SQLiteAuditStore(path, busy_timeout=settings.audit_busy_timeout)
    url = settings.audit_url or ""
    scheme = url.split(":", 1)[0]
    if url.startswith(_POSTGRES_PREFIXES):
        # Imported here so a SQLite-only hub never loads the PostgreSQL driver, which is
        # the optional [postgres] extra: a production image without it opens SQLite only.
        try:
            from hub.audit.postgres import PostgresAuditStore
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "psycopg":
                raise
            raise AuditError(
                "HUB_AUDIT_URL names a PostgreSQL audit store: expected the psycopg driver, "
                "not installed; install the hub with its [postgres] extra "
                "(pip install 'hub[postgres]') or use sqlite:///<path>"
            ) from exc
        return PostgresAuditStore(url)
    # Only the scheme is echoed: a database URL may carry a password.
    raise AuditError(
        f"HUB_AUDIT_URL: expected sqlite:///<path> or postgresql://..., got a {scheme!r} URL"
    )
