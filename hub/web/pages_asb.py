"""The console's ASB Case Reviews page: cases, stages, deadlines and overdue items.

The same view as ``hub asb status``: each open case (closed ones on request), its stage, every
deadline of its stage with its due date in working days and whether it was met, is overdue or
was escalated by the hub, and each body's actions. Case and applicant references only: the
register holds no names. Viewing it is a consultation, justified and audited like the MARAC
board (DPA 2018 s62).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hub.errors import HubError
from hub.processes.base import ConsolePage, NavEntry
from hub.state import open_asb_register
from hub.web.accounts import Role
from hub.web.consult import record_consultation
from hub.web.context import console, justified, render, require
from hub.workflows.asb.report import case_status

__all__ = ["page", "router"]

router = APIRouter()
_ROLES = (Role.IG_OFFICER, Role.MARAC_COORDINATOR)


@router.get("/asb", response_class=HTMLResponse)
def asb_board(request: Request, closed: str = "") -> Response:
    """Cases, stages, deadlines and overdue items (``hub asb status``)."""
    user = require(request, *_ROLES)
    grant = justified(request, "asb-board", "the ASB Case Reviews board (case references)")
    if isinstance(grant, Response):
        return grant
    app = console(request)
    now = app.now()
    protocol = app.protocol()
    try:
        with open_asb_register(app.settings) as register:
            reports = case_status(
                register=register,
                protocol=protocol,
                today=now.date(),
                include_closed=bool(closed),
            )
    except HubError as exc:  # no asb: section, or the register cannot be read
        return render(request, "asb.html", {"reports": [], "error": str(exc), "closed": False})
    with app.store() as store:
        record_consultation(store, viewer=user, grant=grant, what="ASB Case Reviews board", now=now)
    return render(
        request,
        "asb.html",
        {
            "reports": reports,
            "today": now.date(),
            "closed": bool(closed),
            "overdue": sum(len(r.overdue) for r in reports),
            "error": None,
            "policy": protocol.asb,
        },
    )


def page() -> ConsolePage:
    """The page and its navigation entry."""
    return ConsolePage(
        router=router,
        nav=(NavEntry("/asb", "ASB Case Reviews", frozenset(r.value for r in _ROLES)),),
    )
