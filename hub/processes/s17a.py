"""s17A depersonalised data (Crime and Disorder Act 1998 s17A): keep, chase, release.

Before the decision: a submission must come from the responsible authority it names, for a
category the protocol says it submits, for a period that has ended, each area once; a
dataset (the hub's own release) must carry the SHA-256 of its cells, which then goes on
every audit record of the release (the release is audited with its digest). After it: the
submission is kept in the hub's register (``SubmissionKept``), the routed release recorded
with its recipients (``ReleaseRecorded``). The sweep alerts late submitters and releases
each period once it is due (``hub.strategic.sweep``); ``hub strategic`` and the console's
Strategic Assessment page read the register.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hub.models import QuarantineReason
from hub.processes.base import (
    BaseProcess,
    Checked,
    CliGroup,
    ConsolePage,
    Effect,
    EventContext,
    Refusal,
    Routed,
    Stores,
    Sweep,
)
from hub.strategic import StrategicError
from hub.strategic.dataset import (
    TOTAL_AREA,
    TOTAL_CATEGORY,
    Dataset,
    ReleasedCell,
    cells_from_event,
)
from hub.strategic.periods import Quarter
from hub.strategic.register import Release, StrategicRegister
from hub.strategic.suppression import recoverable

if TYPE_CHECKING:
    from hub.durable import GroupSync
    from hub.policies.model import Protocol
    from hub.settings import HubSettings

__all__ = ["PROCESS", "ReleaseRecorded", "S17AProcess", "SubmissionKept", "exposed_cells"]

SUBMISSION_TYPE = "uk.csp.strategic.submission.v1"
DATASET_TYPE = "uk.csp.strategic.dataset.v1"


@dataclass(frozen=True, slots=True)
class SubmissionKept:
    """A routed submission, kept in the hub's s17A register (the latest one wins)."""

    submitter: str
    period: str
    category: str
    submission_id: str
    event_id: str
    received_at: dt.datetime
    counts: tuple[tuple[str, int], ...]

    def apply(self, stores: Stores) -> None:
        """Keep it (the same event again writes the same row)."""
        register = stores.get(StrategicRegister)
        if register is not None:
            register.keep(
                submitter=self.submitter,
                period=self.period,
                category=self.category,
                submission_id=self.submission_id,
                event_id=self.event_id,
                received_at=self.received_at,
                counts=dict(self.counts),
            )


@dataclass(frozen=True, slots=True)
class ReleaseRecorded:
    """A routed release of the dataset, with the parties it reached."""

    release: Release
    threshold: int
    cells: tuple[ReleasedCell, ...]

    def apply(self, stores: Stores) -> None:
        """Record it, and the cells it carried (the console's charts show these)."""
        register = stores.get(StrategicRegister)
        if register is not None:
            register.record_release(self.release)
            register.keep_released_cells(
                self.release.release_id,
                period=self.release.period,
                threshold=self.threshold,
                cells=self.cells,
            )


def _refuse(detail: str) -> Refusal:
    return Refusal(QuarantineReason.POLICY_REJECTED, detail)


def check_submission(ctx: EventContext) -> str:
    """Refuse a submission the s17A section does not expect; the mark for its audit records."""
    data = ctx.data
    policy = ctx.protocol.strategic
    if policy is None:
        raise _refuse("s17A submissions: expected a protocol with a 'strategic:' section")
    submitter, category = str(data["submitter"]), str(data["category"])
    if submitter != ctx.party:
        raise _refuse(f"submitter: expected the publisher {ctx.party}, got {submitter}")
    owed = policy.submitters.get(submitter)
    if owed is None:
        raise _refuse(f"submitter {submitter}: not a responsible authority of strategic.submitters")
    if category not in owed:
        raise _refuse(
            f"category {category}: expected one of {submitter}'s categories "
            f"({', '.join(owed)}) under strategic.submitters"
        )
    try:
        period = Quarter.parse(str(data["period"]))
    except StrategicError as exc:
        raise _refuse(str(exc)) from exc
    if period.end >= ctx.now.date():
        raise _refuse(
            f"period {period}: expected an information period that has ended; it ends on "
            f"{period.end}"
        )
    areas = [str(c["area"]) for c in data["counts"]]
    twice = sorted({a for a in areas if areas.count(a) > 1})
    if twice:
        raise _refuse(f"counts: each area once, got {', '.join(twice)} more than once")
    return f"s17A counts for {period} ({category}, {len(areas)} areas) kept by the hub"


def check_dataset(ctx: EventContext) -> str:
    """The release's digest must be its cells'; the mark carries it onto the audit records."""
    data = ctx.data
    dataset = Dataset(
        period=str(data["period"]),
        threshold=int(data["threshold"]),
        cells=cells_from_event(data),
        submitters=tuple(data["submitters"]),
        missing=tuple(data["missing"]),
    )
    digest = hashlib.sha256(dataset.csv_bytes()).hexdigest()
    if digest != data["sha256"]:
        raise _refuse(
            f"sha256: expected the digest of the dataset's cells ({digest}), got {data['sha256']}"
        )
    policy = ctx.protocol.strategic
    if policy is None:  # no threshold to hold the release to: default deny
        raise _refuse("s17A dataset: expected a protocol with a 'strategic:' section")
    small = [c for c in dataset.cells if c.count is not None and c.count < policy.threshold]
    if small:
        raise _refuse(
            f"cells: {len(small)} released below the threshold of {policy.threshold}; "
            "build the release with hub strategic release"
        )
    exposed = exposed_cells(dataset.cells)
    if exposed:
        first = exposed[0]
        raise _refuse(
            f"cells: {len(exposed)} suppressed can be worked out from the released cells and "
            f"totals (e.g. {first.district} {first.level} {first.area} {first.category}); "
            "build the release with hub strategic release"
        )
    return f"s17A dataset {dataset.period} sha256 {digest}"


def exposed_cells(cells: Sequence[ReleasedCell]) -> list[ReleasedCell]:
    """Suppressed cells a reader can recover (``suppression.recoverable``), table by table.

    Each (district, level) table must be whole: every area by every category, with the
    area totals and the category totals; a table that is not is exposed as a whole.
    """
    tables: dict[tuple[str, str], list[ReleasedCell]] = {}
    for cell in cells:
        tables.setdefault((cell.district, cell.level), []).append(cell)
    exposed: list[ReleasedCell] = []
    for table in tables.values():
        areas = [a for a in dict.fromkeys(c.area for c in table) if a != TOTAL_AREA]
        categories = [k for k in dict.fromkeys(c.category for c in table) if k != TOTAL_CATEGORY]
        at = {(c.area, c.category): c for c in table}
        names, columns = [*areas, TOTAL_AREA], [*categories, TOTAL_CATEGORY]
        if len(at) != len(table) or any((a, k) not in at for a in names for k in columns):
            exposed.extend(table)  # not a table with its margins: nothing to check it by
            continue
        mask = [[at[(a, k)].count is None for k in columns] for a in names]
        exposed.extend(at[(names[i], columns[j])] for i, j in recoverable(mask))
    return exposed


class S17AProcess(BaseProcess):
    """s17A submissions, alerts and the Strategic Assessment dataset."""

    name = "s17a"
    event_types = ("uk.csp.strategic.*",)

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """Submissions from the right party, for the right things; releases with their digest."""
        if ctx.type == SUBMISSION_TYPE:
            return Checked(marks=(check_submission(ctx),))
        if ctx.type == DATASET_TYPE:
            return Checked(marks=(check_dataset(ctx),))
        return None

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """Keep the submission; record the release and who received it."""
        data = ctx.data
        if ctx.type == SUBMISSION_TYPE:
            counts = tuple(sorted((str(c["area"]), int(c["count"])) for c in data["counts"]))
            return [
                SubmissionKept(
                    submitter=str(data["submitter"]),
                    period=str(data["period"]),
                    category=str(data["category"]),
                    submission_id=str(data["submission_id"]),
                    event_id=ctx.id,
                    received_at=ctx.now,
                    counts=counts,
                )
            ]
        if ctx.type == DATASET_TYPE:
            release = Release(
                release_id=str(data["release_id"]),
                period=str(data["period"]),
                sha256=str(data["sha256"]),
                event_id=ctx.id,
                released_at=ctx.now.astimezone(dt.UTC).isoformat(),
                recipients=tuple(sorted(routed.delivered)),
            )
            return [ReleaseRecorded(release, int(data["threshold"]), cells_from_event(data))]
        return ()

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The s17A register: the workflow registers' file, or PostgreSQL (``hub.state``)."""
        from hub.state import open_strategic_register

        return [open_strategic_register(settings, group=group)]

    def sweeps(self, protocol: Protocol) -> Sequence[Sweep]:
        """Late-submitter alerts and due releases, when the protocol has a strategic section."""
        if protocol.strategic is None:
            return []
        from hub.strategic.sweep import sweep_strategic

        return [Sweep("strategic_sweep", sweep_strategic)]

    def cli(self) -> Sequence[CliGroup]:
        """``hub strategic status|export|release|sweep``."""
        from hub.cli import strategic

        return [CliGroup("strategic", strategic.app)]

    def console(self) -> Sequence[ConsolePage]:
        """The Strategic Assessment page: per district, the trend over eight quarters."""
        from hub.web.pages_strategic import PAGE

        return [PAGE]


PROCESS = S17AProcess()
