"""Audit retention: which prefix of the log may be pruned, and what is kept when it is.

A protocol's ``audit_retention`` (an ISO 8601 duration, e.g. ``P6Y``) says how long audit
records are kept. Records older than that are personal data held longer than needed (UK GDPR
Art 5(1)(e)), so ``hub audit prune`` removes them, but only as a *prefix* ``[0, K)`` of the
Merkle log: the store keeps the RFC 9162 hashes of the perfect subtrees covering ``[0, K)``
(the compact range, see ``hub.audit.merkle``), so every root, inclusion proof and
consistency proof from size K on is unchanged and every checkpoint of size >= K still
verifies. A record of a case under legal hold is never pruned, and since only a prefix can
go, the first such record ends the prefix.

Checkpoints of sizes below K: at each prune the log also keeps a consistency proof (a few
hashes, O(log K)) from every stored checkpoint size below K, and from the previous pruned
size, to K. ``AuditLog.verify`` rechecks those checkpoints through that chain; a copy a party
kept of a checkpoint at another size below K can no longer be rechecked against the log.

This module is a leaf (no store or log imports) so both stores can use ``PrunedPrefix``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from dateutil.relativedelta import relativedelta

from hub.audit.merkle import HASH_SIZE, check_frontier
from hub.clock import utc
from hub.errors import AuditError, AuditIntegrityError, ProtocolError
from hub.models import AuditRecord

if TYPE_CHECKING:
    from hub.audit.store import AuditStore

__all__ = [
    "PrunePlan",
    "PruneStop",
    "PrunedPrefix",
    "check_duration",
    "plan_prune",
    "subtract_duration",
]

#: records read per store round trip while planning a prune
_BATCH = 5000

PruneStop = Literal["cut-off", "legal hold", "end of log"]


def _parse(duration: str) -> relativedelta:
    """An ISO 8601 duration as protocols write them (P6Y, P12M, P2Y6M, P30D, P1W, PT12H).

    The grammar of ``hub.policies.durations``, which ``hub policy check`` applies too.
    """
    # imported here: hub.policies.model validates a protocol's audit retention with this
    # module, so importing the policies package at the top would be circular
    from hub.policies import durations

    try:
        return durations.parse(duration)
    except ProtocolError as exc:
        raise AuditError(
            f"audit retention: expected an ISO 8601 duration such as P6Y, P18M or P90D, "
            f"got {duration!r}"
        ) from exc


def check_duration(duration: str) -> str:
    """Return ``duration`` if it is an ISO 8601 duration this module can apply.

    Raises:
        AuditError: it is not (e.g. ``6Y``, ``P``, ``PT``, ``P6y``).
    """
    _parse(duration)
    return duration


def subtract_duration(when: datetime, duration: str) -> datetime:
    """``when`` minus an ISO 8601 duration, years and months by the calendar.

    ``2030-02-28 - P6Y`` is ``2024-02-28``; a day that does not exist in the target month is
    clamped to its last day (``2024-02-29 - P1Y`` is ``2023-02-28``), so the cut-off never
    moves later than the duration allows.

    Raises:
        AuditError: ``duration`` is not an ISO 8601 duration.
    """
    delta = _parse(duration)
    try:  # years and months first, the day clamped to the month; then the rest exactly
        return when - delta
    except (ValueError, OverflowError) as exc:
        raise AuditError(f"audit retention {duration}: reaches before year 1") from exc


@dataclass(frozen=True)
class PrunedPrefix:
    """One prune as the store keeps it: leaves ``[0, size)`` removed, their hashes kept.

    Attributes:
        size: K, the number of leaves pruned (cumulative: leaves before K are gone).
        frontier: the compact range of ``[0, size)``, largest subtree first.
        before: the cut-off: every pruned record was written before it.
        pruned_at: when the prune ran.
        proofs: RFC 9162 consistency proofs to ``size`` from the previous pruned size and
            from every checkpoint size below ``size`` that was stored when it ran.
    """

    size: int
    frontier: tuple[bytes, ...]
    before: datetime
    pruned_at: datetime
    proofs: Mapping[int, tuple[bytes, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_frontier(self.size, self.frontier)
        if self.size < 1:
            raise AuditIntegrityError(f"pruned prefix: expected at least 1 leaf, got {self.size}")
        for old, proof in self.proofs.items():
            if not 0 < old < self.size or any(len(h) != HASH_SIZE for h in proof):
                raise AuditIntegrityError(
                    f"pruned prefix of {self.size}: bad consistency proof from size {old}"
                )

    def frontier_bytes(self) -> bytes:
        """The frontier hashes concatenated, as stored."""
        return b"".join(self.frontier)

    def proofs_json(self) -> str:
        """The consistency proofs as stored: JSON of size -> base64 hashes."""
        return json.dumps(
            {
                str(old): [base64.b64encode(h).decode() for h in proof]
                for old, proof in sorted(self.proofs.items())
            },
            sort_keys=True,
        )

    @classmethod
    def from_stored(
        cls, *, size: int, frontier: bytes, proofs: str, before: datetime, pruned_at: datetime
    ) -> PrunedPrefix:
        """Rebuild from the stored columns.

        Raises:
            AuditIntegrityError: the stored hashes are malformed (an altered row).
        """
        if len(frontier) % HASH_SIZE:
            raise AuditIntegrityError(
                f"pruned prefix of {size}: frontier of {len(frontier)} bytes is not whole hashes"
            )
        try:
            decoded = {
                int(old): tuple(base64.b64decode(h, validate=True) for h in hashes)
                for old, hashes in json.loads(proofs).items()
            }
        except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
            raise AuditIntegrityError(f"pruned prefix of {size}: unreadable proofs: {exc}") from exc
        return cls(
            size=size,
            frontier=tuple(frontier[i : i + HASH_SIZE] for i in range(0, len(frontier), HASH_SIZE)),
            before=utc(before),
            pruned_at=utc(pruned_at),
            proofs=decoded,
        )


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would remove, found by ``plan_prune`` before anything changes.

    Attributes:
        start: leaves already pruned (the prune removes ``[start, end)``).
        end: K, the new pruned size; ``end == start`` means nothing can be pruned.
        size: the log size when planned.
        before: the cut-off.
        stop: why the prefix ends at ``end``: the first record at or after the cut-off, the
            first record of a case under legal hold, or the end of the log.
        held_case: the held case pseudonym, when ``stop`` is ``legal hold``.
        first_kept_time: the time of record ``end``, if there is one.
        oldest_pruned_time: the time of record ``start``, if anything is pruned.
    """

    start: int
    end: int
    size: int
    before: datetime
    stop: PruneStop
    held_case: str | None = None
    first_kept_time: datetime | None = None
    oldest_pruned_time: datetime | None = None

    @property
    def count(self) -> int:
        """How many records the prune removes."""
        return self.end - self.start

    def describe(self) -> str:
        """One line for people: what goes, and why the prefix stops where it does."""
        cut = f"{self.before:%Y-%m-%d %H:%M:%SZ}"
        if not self.count:
            head = f"nothing to prune before {cut}"
        else:
            head = f"prune records [{self.start}, {self.end}) of {self.size}, written before {cut}"
        if self.stop == "legal hold":
            return (
                f"{head}; stopped at record {self.end}: case {self.held_case} is under legal "
                f"hold, so it and every later record are kept"
            )
        if self.stop == "cut-off":
            return f"{head}; record {self.end} is within the retention period"
        return head


def plan_prune(store: AuditStore, *, before: datetime, held_cases: set[str]) -> PrunePlan:
    """The longest prefix of the log whose records are all older than ``before``.

    Only a prefix can be pruned (the kept hashes cover ``[0, K)``), so the first record
    written at or after the cut-off ends it, and so does the first record of a case under
    legal hold: it is kept, and with it everything after it. Records are append-ordered,
    not strictly time-ordered (a late acknowledgement), which this scan respects.

    Cost: reads the records from the pruned size up to the cut-off, in batches.
    """
    before = utc(before)
    prunes = store.prunes()
    start = prunes[-1].size if prunes else 0
    size = store.size()
    index = start
    oldest: datetime | None = None
    while index < size:
        batch = store.leaves(index, min(index + _BATCH, size))
        if not batch:
            break
        for data in batch:
            record = AuditRecord.model_validate_json(data)
            time = utc(record.time)
            if record.case_pseudonym is not None and record.case_pseudonym in held_cases:
                return PrunePlan(
                    start, index, size, before, "legal hold", record.case_pseudonym, time, oldest
                )
            if time >= before:
                return PrunePlan(start, index, size, before, "cut-off", None, time, oldest)
            oldest = oldest or time
            index += 1
    return PrunePlan(start, index, size, before, "end of log", None, None, oldest)
