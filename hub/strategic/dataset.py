"""The partnership dataset for one information period: all partners, suppressed.

Counts are summed by district and area (ward, or general postcode: the outward code) and
category, one table per district and level, with each area's total, each category's total
and the district's total. Every table is suppressed on its own (``suppression.suppress``):
no released cell is below the threshold and no hidden cell can be worked out from the
released cells and totals. Tables never share a released total (there is no partnership-wide
total), so one table's totals cannot undo another's suppression.

The CSV form is the dataset's canonical bytes: its SHA-256 is what the release event carries
and what the audit records, and ``hub strategic export`` writes exactly those bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.policies.model import StrategicPolicy
from hub.strategic.periods import Quarter
from hub.strategic.suppression import augmented, suppress

__all__ = [
    "COLUMNS",
    "TOTAL_AREA",
    "TOTAL_CATEGORY",
    "UNASSIGNED",
    "Dataset",
    "ReleasedCell",
    "Submission",
    "build_dataset",
    "cells_from_event",
    "level_of",
]

Level = Literal["ward", "outward_code"]
LEVELS: tuple[Level, ...] = ("ward", "outward_code")
TOTAL_AREA = "TOTAL"
TOTAL_CATEGORY = "total"
#: the district of an area no district of the protocol lists
UNASSIGNED = "unassigned"
COLUMNS = ("period", "district", "level", "area", "category", "count", "status")


def level_of(area: str) -> Level:
    """A ward code (E05..., W05...) or a general postcode (the outward code)."""
    return "ward" if area[:1] in "EW" and area[1:3] == "05" and len(area) == 9 else "outward_code"


@dataclass(frozen=True, slots=True)
class Submission:
    """One responsible authority's counts for one period and category, as the hub keeps it."""

    submitter: str
    period: str
    category: str
    counts: Mapping[str, int]
    submission_id: str = ""
    event_id: str = ""
    received_at: str = ""


@dataclass(frozen=True, slots=True)
class ReleasedCell:
    """One cell of the released dataset: ``count`` is None when suppressed."""

    district: str
    level: Level
    area: str
    category: str
    count: int | None

    def as_event(self) -> dict[str, Any]:
        """The cell as the dataset event carries it."""
        return {
            "district": self.district,
            "level": self.level,
            "area": self.area,
            "category": self.category,
            "count": self.count,
        }


@dataclass(frozen=True)
class Dataset:
    """One period's released dataset, and what it was built from."""

    period: str
    threshold: int
    cells: tuple[ReleasedCell, ...]
    submitters: tuple[str, ...]
    missing: tuple[str, ...]
    #: hidden cells per table, for reports: (district, level) -> count
    suppressed: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def csv_bytes(self) -> bytes:
        """The canonical CSV (UTF-8, LF line ends, fixed column and row order)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for cell in self.cells:
            released = cell.count is not None
            writer.writerow(
                (
                    self.period,
                    cell.district,
                    cell.level,
                    cell.area,
                    cell.category,
                    "" if cell.count is None else cell.count,
                    "released" if released else "suppressed",
                )
            )
        return out.getvalue().encode()

    @property
    def sha256(self) -> str:
        """SHA-256 of ``csv_bytes``: the digest the release carries and the audit records."""
        return hashlib.sha256(self.csv_bytes()).hexdigest()

    def release_id(self) -> str:
        """Derived from the period and the digest: the same dataset is the same release."""
        return f"S17A-{self.period}-{self.sha256[:12]}"

    def as_event(self, *, built_at: dt.datetime) -> dict[str, Any]:
        """The payload of ``uk.csp.strategic.dataset.v1``."""
        return {
            "release_id": self.release_id(),
            "period": self.period,
            "threshold": self.threshold,
            "sha256": self.sha256,
            "built_at": built_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "submitters": list(self.submitters),
            "missing": list(self.missing),
            "cells": [c.as_event() for c in self.cells],
        }

    def totals(self, district: str) -> dict[str, int | None]:
        """Released category totals of one district (both levels; the first level wins)."""
        out: dict[str, int | None] = {}
        for cell in self.cells:
            if (
                cell.district == district
                and cell.area == TOTAL_AREA
                and cell.category != TOTAL_CATEGORY
            ):
                out.setdefault(cell.category, cell.count)
        return out


def cells_from_event(data: Mapping[str, Any]) -> tuple[ReleasedCell, ...]:
    """The cells of a dataset event, for checking its digest."""
    return tuple(
        ReleasedCell(c["district"], c["level"], c["area"], c["category"], c["count"])
        for c in data["cells"]
    )


def build_dataset(
    policy: StrategicPolicy, period: Quarter | str, submissions: Iterable[Submission]
) -> Dataset:
    """All partners' counts for ``period``, by district and ward or outward code, suppressed.

    Args:
        policy: the protocol's ``strategic`` section (threshold, districts, submitters).
        period: the information period; submissions for other periods are ignored.
        submissions: the latest submission of each submitter and category (the register's).

    Returns:
        The dataset: one table per district and level, areas in protocol order, categories
        in protocol order, then each row's and column's totals; hidden counts are None.
    """
    period = str(period)
    kept = [s for s in submissions if s.period == period]
    # (district, level) -> area -> category -> count
    sums: dict[tuple[str, Level], dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    categories_at: dict[Level, set[str]] = defaultdict(set)
    for submission in kept:
        for area, count in submission.counts.items():
            level = level_of(area)
            district = policy.district_of(area) or UNASSIGNED
            sums[(district, level)][area][submission.category] += count
            categories_at[level].add(submission.category)
    order = list(policy.categories)
    cells: list[ReleasedCell] = []
    hidden_counts: dict[tuple[str, str], int] = {}
    districts = [*policy.districts, UNASSIGNED]
    for district in districts:
        for level in LEVELS:
            categories = sorted(categories_at[level], key=_position(order))
            if not categories or (district == UNASSIGNED and (district, level) not in sums):
                continue
            areas = _areas(policy, district, level, sums.get((district, level), {}))
            if not areas:
                continue
            table = sums.get((district, level), {})
            values = [[table.get(a, {}).get(c, 0) for c in categories] for a in areas]
            cells.extend(_released(district, level, areas, categories, values, policy.threshold))
            hidden_counts[(district, level)] = sum(
                1 for c in cells[-(len(areas) + 1) * (len(categories) + 1) :] if c.count is None
            )
    submitters = tuple(sorted({s.submitter for s in kept}))
    missing = tuple(
        party
        for party, expected in policy.submitters.items()
        if not set(expected) <= {s.category for s in kept if s.submitter == party}
    )
    return Dataset(
        period=period,
        threshold=policy.threshold,
        cells=tuple(cells),
        submitters=submitters,
        missing=missing,
        suppressed=hidden_counts,
    )


def _position(order: Sequence[str]) -> Any:
    def key(name: str) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    return key


def _areas(
    policy: StrategicPolicy, district: str, level: Level, submitted: Mapping[str, Any]
) -> list[str]:
    """The district's areas of this level: the protocol's list, then any others submitted."""
    declared: list[str] = []
    if district in policy.districts:
        areas = policy.districts[district]
        declared = list(areas.wards) if level == "ward" else list(areas.outward_codes)
    return declared + sorted(set(submitted) - set(declared))


def _released(
    district: str,
    level: Level,
    areas: Sequence[str],
    categories: Sequence[str],
    values: Sequence[Sequence[int]],
    threshold: int,
) -> list[ReleasedCell]:
    table = augmented(values)
    hidden = suppress(values, threshold=threshold)
    names = [*areas, TOTAL_AREA]
    columns = [*categories, TOTAL_CATEGORY]
    return [
        ReleasedCell(district, level, names[i], columns[j], None if hidden[i][j] else table[i][j])
        for i in range(len(names))
        for j in range(len(columns))
    ]
