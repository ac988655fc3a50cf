"""Live counters and the volume chart: pure functions over audit records.

``AuditStore.counts`` gives the totals; the per-minute figures come from one ``query`` of the
records written in the last hour (a linear scan of that hour, fine at partnership volumes).
The chart is an inline SVG drawn here, so it needs no JavaScript and no chart library, with
the same numbers as a table beside it for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from hub.clock import utc
from hub.models import AuditDecision, AuditRecord

__all__ = ["Bar", "Live", "live_counters"]

_ROUTING = (AuditDecision.DELIVERED, AuditDecision.WITHHELD, AuditDecision.REJECTED)
CHART_MINUTES = 60
_CHART_HEIGHT = 120


@dataclass(frozen=True)
class Bar:
    """One minute of the chart: its counts, and its stacked bar segments in SVG units."""

    minute: dt.datetime
    delivered: int
    withheld: int
    rejected: int
    x: float
    segments: tuple[tuple[str, float, float], ...]  # (css class, y, height)


@dataclass(frozen=True)
class Live:
    """What the dashboard shows now."""

    now: dt.datetime
    totals: dict[str, int]
    per_type: list[tuple[str, int]]  # events decided in the last minute, by type
    bars: list[Bar]
    peak: int


def live_counters(
    totals: dict[str, int], recent: Iterable[AuditRecord], *, now: dt.datetime
) -> Live:
    """Totals, events per minute by type and per-minute volumes over the last hour.

    Args:
        totals: ``AuditStore.counts()``.
        recent: records written in the last ``CHART_MINUTES`` minutes.
        now: the hub's current time.
    """
    now = utc(now)
    start = now.replace(second=0, microsecond=0) - dt.timedelta(minutes=CHART_MINUTES - 1)
    last_minute = now - dt.timedelta(minutes=1)
    buckets: dict[dt.datetime, Counter[str]] = {
        start + dt.timedelta(minutes=i): Counter() for i in range(CHART_MINUTES)
    }
    types: dict[str, set[str]] = {}
    for record in recent:
        if record.decision not in _ROUTING:
            continue
        when = utc(record.time)
        minute = when.replace(second=0, microsecond=0)
        if minute in buckets:
            buckets[minute][record.decision.value] += 1
        if when >= last_minute:
            types.setdefault(record.event_type or "(unknown type)", set()).add(record.event_id)
    peak = max((sum(c.values()) for c in buckets.values()), default=0)
    scale = _CHART_HEIGHT / peak if peak else 0.0
    bars = []
    for index, (minute, counts) in enumerate(sorted(buckets.items())):
        y = float(_CHART_HEIGHT)
        segments = []
        for decision in _ROUTING:
            height = counts[decision.value] * scale
            if height:
                y -= height
                segments.append((decision.value, round(y, 2), round(height, 2)))
        bars.append(
            Bar(
                minute=minute,
                delivered=counts["delivered"],
                withheld=counts["withheld"],
                rejected=counts["rejected"],
                x=index * 10.0,
                segments=tuple(segments),
            )
        )
    per_type = sorted(((t, len(ids)) for t, ids in types.items()), key=lambda i: (-i[1], i[0]))
    return Live(now=now, totals=totals, per_type=per_type, bars=bars, peak=peak)
