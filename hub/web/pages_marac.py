"""The MARAC board: flags, departments, acknowledgements and overdue escalations.

The MARAC process's console page (``hub.processes.marac``), calling what ``hub marac status``
calls (``flag_status``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hub.policies.loader import load_protocol
from hub.state import open_flag_register
from hub.web.accounts import Role
from hub.web.consult import record_consultation
from hub.web.context import console, justified, render, require
from hub.workflows.marac import flag_status

__all__ = ["router"]

router = APIRouter()


# -- MARAC board -----------------------------------------------------------------------------


@router.get("/marac", response_class=HTMLResponse)
def marac_board(request: Request, closed: str = "") -> Response:
    """Flags, departments, acknowledgements and overdue escalations (``hub marac status``)."""
    user = require(request, Role.IG_OFFICER, Role.MARAC_COORDINATOR)
    grant = justified(request, "marac-board", "the MARAC board (case references)")
    if isinstance(grant, Response):
        return grant
    app = console(request)
    now = app.now()
    protocol = load_protocol(app.settings.protocol)
    with app.store() as store, open_flag_register(app.settings) as register:
        flags = flag_status(
            register=register,
            store=store,
            protocol=protocol,
            pseudonymiser=app.pseudonymiser(),
            now=now,
            include_closed=bool(closed),
        )
        record_consultation(store, viewer=user, grant=grant, what="MARAC board", now=now)
    rows = []
    for report in flags:
        latest: dict[str, Any] = {}
        for ack in report.acks:  # the newest delivery per department decides its line
            if ack.party not in latest or ack.delivered_at >= latest[ack.party].delivered_at:
                latest[ack.party] = ack
        rows.append((report, sorted(latest.items())))
    return render(
        request,
        "marac.html",
        {
            "rows": rows,
            "now": now,
            "closed": bool(closed),
            "overdue": sum(len(r.overdue) for r in flags),
            "escalated": sum(1 for r in flags for a in r.overdue if a.escalated),
            "contact": protocol.marac.contact if protocol.marac else None,
        },
    )
