"""The console's Strategic Assessment chart: per district, eight quarters of released totals.

Each point is a district's total for one category in one quarter as the latest release of
that quarter carried it (``StrategicRegister.released``): a suppressed total, or a quarter
not released yet, is a gap in the line, never a number. Never figures built afresh: those
could differ from a release (a late submission since) and the difference could be small.
Drawn on the server with matplotlib's Agg backend as SVG, inlined
in the page: no script, no CDN. Needs the ``[strategic]`` extra.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.policies.model import StrategicPolicy
from hub.strategic import StrategicError
from hub.strategic.dataset import Dataset
from hub.strategic.periods import Quarter

__all__ = ["QUARTERS", "Trend", "trend_svg", "trends"]

#: how many quarters the console's chart shows
QUARTERS = 8


@dataclass(frozen=True)
class Trend:
    """One district's released category totals over ``quarters`` (None: suppressed or none)."""

    district: str
    name: str
    quarters: tuple[str, ...]
    series: Mapping[str, tuple[int | None, ...]]
    #: per quarter: whether it was released (a gap otherwise)
    released: tuple[bool, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether no quarter released anything for this district."""
        return all(v is None for values in self.series.values() for v in values)


def trends(
    policy: StrategicPolicy,
    released: Mapping[str, Dataset],
    *,
    end: Quarter,
    count: int = QUARTERS,
) -> list[Trend]:
    """Per district of the protocol, the released totals of the ``count`` quarters to ``end``.

    ``released``: period -> its latest released dataset (``StrategicRegister.released``).
    """
    quarters = end.last(count)
    out = []
    for district, areas in policy.districts.items():
        totals = {str(q): released[str(q)].totals(district) for q in quarters if str(q) in released}
        series: dict[str, tuple[int | None, ...]] = {}
        for category in policy.categories:
            if any(category in t for t in totals.values()):
                series[category] = tuple(totals.get(str(q), {}).get(category) for q in quarters)
        out.append(
            Trend(
                district,
                areas.name,
                tuple(map(str, quarters)),
                series,
                tuple(str(q) in released for q in quarters),
            )
        )
    return out


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise StrategicError(
            "trend charts: expected the matplotlib package, not installed; install the hub "
            "with its [strategic] extra (pip install 'hub[strategic]')"
        ) from exc
    matplotlib.use("Agg", force=True)  # no display: draw to files only
    import matplotlib.pyplot as plt

    return plt


def trend_svg(trend: Trend, *, labels: Mapping[str, str] | None = None) -> str:
    """The district's trend as an SVG document (deterministic for the same data)."""
    plt = _pyplot()
    labels = labels or {}
    with plt.rc_context({"svg.hashsalt": f"s17a-{trend.district}", "svg.fonttype": "none"}):
        figure, axes = plt.subplots(figsize=(8, 4.4))
        try:
            xs = list(range(len(trend.quarters)))
            for category, values in trend.series.items():
                ys: Sequence[float] = [math.nan if v is None else float(v) for v in values]
                axes.plot(xs, ys, marker="o", label=labels.get(category, category))
            axes.set_xticks(xs, trend.quarters)
            axes.set_title(f"{trend.name}: released totals by quarter")
            axes.set_ylabel("count")
            axes.set_ylim(bottom=0)
            axes.grid(alpha=0.3)
            if trend.series:
                axes.legend(
                    fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3
                )
            figure.tight_layout()
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", metadata={"Date": None})
        finally:
            plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # inline: without the XML prolog and doctype
