"""The console's Strategic Assessment page: per district, the trend over eight quarters.

The figures the releases carried (``StrategicRegister.released``), so the page shows nothing
a release did not: each district's released category totals over the last eight
information periods (a quarter not released yet is a gap), drawn on the server as SVG
(``hub.strategic.chart``), with who has submitted the latest period and who is late
(``hub strategic status``). Depersonalised and
suppressed, so any signed-in user may see it; no justification is asked.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from hub.errors import HubError
from hub.processes.base import ConsolePage, NavEntry
from hub.state import open_strategic_register
from hub.strategic.chart import QUARTERS, trend_svg, trends
from hub.strategic.periods import Quarter
from hub.strategic.status import submitter_states
from hub.web.context import console, render, require

__all__ = ["PAGE", "router"]

router = APIRouter()


@router.get("/strategic", response_class=HTMLResponse)
def strategic_page(request: Request, period: str = "") -> Response:
    """Per district, the released totals of the last eight quarters, and who is late."""
    require(request)
    app = console(request)
    today = app.now().date()
    policy = app.protocol().strategic
    if policy is None:
        return render(
            request, "strategic.html", {"error": "The protocol has no strategic: section."}
        )
    try:
        end = Quarter.parse(period) if period else Quarter.of(today).previous
        with open_strategic_register(app.settings) as register:
            submissions = register.submissions()
            releases = register.releases()
            released = register.released()
        charts = [
            (trend, Markup(trend_svg(trend, labels=policy.categories)))  # noqa: S704 - our SVG
            for trend in trends(policy, released, end=end)
        ]
        states = submitter_states(policy, submissions, today=today, periods=[end])
    except HubError as exc:  # a bad period, no [strategic] extra, an unreadable register
        return render(request, "strategic.html", {"error": str(exc)})
    return render(
        request,
        "strategic.html",
        {
            "error": None,
            "end": str(end),
            "quarters": QUARTERS,
            "charts": charts,
            "states": states,
            "releases": [r for r in releases if r.period == str(end)],
            "threshold": policy.threshold,
        },
    )


PAGE = ConsolePage(router=router, nav=(NavEntry("/strategic", "Strategic Assessment"),))
