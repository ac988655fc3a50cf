"""Operations pages: live counters, log integrity, the protocol, explain.

Each page calls what the CLI calls: ``AuditLog.verify`` (``hub audit verify``),
``check_protocol`` and ``explain`` (``hub policy check|explain``). The MARAC board is the
MARAC process's page (``hub.web.pages_marac``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.audit.refusals import Refusals, recent_refusals
from hub.audit.store import AuditStore
from hub.errors import HubError
from hub.policies.check import check_protocol
from hub.policies.explain import explain
from hub.policies.loader import load_protocol
from hub.schemas.codec import SchemaRegistry
from hub.web.accounts import Role
from hub.web.context import console, render, require
from hub.web.counters import CHART_MINUTES, live_counters
from hub.web.session import check_csrf

__all__ = ["router"]

router = APIRouter()

_LAST_VERIFY = "console-last-verify.json"
_RECENT_LIMIT = 200_000


# -- live counters ---------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    """Totals per decision, events per minute by type, volumes over the last hour.

    An IG officer also sees a banner when the audit sink refused ``hub.audit`` messages
    (``hub.audit.refusals``); other roles do not (they have nothing to act on it with).
    """
    user = require(request)
    refusals = _refusals(request) if user.role is Role.IG_OFFICER else None
    return render(request, "dashboard.html", {"live": _live(request), "refusals": refusals})


@router.get("/dashboard/live", response_class=HTMLResponse)
def dashboard_live(request: Request) -> Response:
    """The counters alone, for the page's refresh script."""
    require(request)
    return render(request, "_live.html", {"live": _live(request)})


def _live(request: Request) -> Any:
    app = console(request)
    now = app.now()
    with app.store() as store:
        totals = store.counts()
        recent = store.query(since=now - dt.timedelta(minutes=CHART_MINUTES), limit=_RECENT_LIMIT)
    return live_counters(totals, recent, now=now)


# -- log integrity ---------------------------------------------------------------------------


def _refusals(request: Request) -> Refusals:
    """The audit sink's refusals of forged or unreadable hub.audit messages, newest first."""
    app = console(request)
    with app.store() as store:
        return recent_refusals(store, now=app.now())


@router.get("/integrity", response_class=HTMLResponse)
def integrity(request: Request) -> Response:
    """The latest checkpoint, the last verification, a button to verify now, and refusals.

    Refusals are the ``hub.audit`` messages the sink would not store (a forged MAC, or
    unreadable): each one's time, origin, reason and SHA-256, no personal data.
    """
    require(request, Role.IG_OFFICER)
    app = console(request)
    refusals = _refusals(request)
    signer = log_signer(app.settings)
    latest: dict[str, Any] | None = None
    with app.store() as store:
        size = store.size()
        notes = store.checkpoints()
        if notes:
            note = notes[-1][1]
            try:
                head = signer.verifier().open_checkpoint(note)
                latest = {"note": note, "size": head.size, "ok": True, "error": None}
            except HubError as exc:
                latest = {"note": note, "size": notes[-1][0], "ok": False, "error": str(exc)}
            latest["as_of"] = _newest_record_time(store, latest["size"])
    path = app.settings.data_dir / _LAST_VERIFY
    last = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return render(
        request,
        "integrity.html",
        {
            "size": size,
            "latest": latest,
            "last": last,
            "verifier_key": signer.verifier_key,
            "checkpoints": len(notes),
            "refusals": refusals,
            "summary": integrity_summary(
                size=size,
                latest=latest,
                last=last,
                signer=f"{signer.name} (key {signer.key_id.hex()})",
                now=app.now(),
            ),
        },
    )


def _newest_record_time(store: AuditStore, size: int) -> dt.datetime | None:
    """The time of the last record a checkpoint of ``size`` covers (None if unreadable)."""
    try:
        leaves = store.leaves(size - 1, size) if size > 0 else []
        value = json.loads(leaves[0])["time"] if leaves else None
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except (HubError, ValueError, KeyError, TypeError):
        return None  # pruned or unreadable: the sentence then names no time


def _at(moment: dt.datetime | None, now: dt.datetime) -> str:
    """``10:42 UTC``, with the date when it is not today's."""
    if moment is None:
        return "an unknown time"
    utc = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    day = "" if utc.date() == now.astimezone(dt.UTC).date() else f" on {utc:%Y-%m-%d}"
    return f"{utc:%H:%M} UTC{day}"


def integrity_summary(
    *,
    size: int,
    latest: dict[str, Any] | None,
    last: dict[str, Any] | None,
    signer: str,
    now: dt.datetime,
) -> str:
    """The state of the log in one sentence an IG officer can repeat.

    "The log's 12,345 records are intact as of 10:42; last independent check 10:40; signed
    by ...": intact means the newest checkpoint's signature verifies and the last full check
    (``Verify now``, ``hub audit verify``) found nothing wrong; anything else says so first.
    """
    if last is not None and not last.get("ok"):
        when = _at(dt.datetime.fromisoformat(last["at"]), now) if last.get("at") else "?"
        return (
            f"The log does NOT verify: the independent check at {when} found "
            f"{last.get('first') or 'a problem'}. The log holds {size:,} records."
        )
    if latest is None:
        return f"The log holds {size:,} records; no checkpoint has been signed yet."
    if not latest["ok"]:
        return (
            f"The newest checkpoint (tree size {latest['size']:,}) does NOT verify: "
            f"{latest['error']}. The log holds {size:,} records."
        )
    checked = (
        f"last independent check {_at(dt.datetime.fromisoformat(last['at']), now)}"
        f" ({last['tree_size']:,} records)"
        if last is not None and last.get("at")
        else "not yet checked independently (Verify now)"
    )
    newer = size - latest["size"]
    since = f" ({newer:,} written since, not yet in a checkpoint)" if newer > 0 else ""
    return (
        f"The log's {latest['size']:,} records are intact as of "
        f"{_at(latest.get('as_of'), now)}{since}; {checked}; signed by {signer}."
    )


@router.post("/integrity/verify")
def integrity_verify(request: Request, csrf_token: Annotated[str, Form()] = "") -> RedirectResponse:
    """Recompute the Merkle tree and check every record and checkpoint, now."""
    check_csrf(request, csrf_token)
    user = require(request, Role.IG_OFFICER)
    app = console(request)
    started = app.now()
    with app.store() as store:
        report = AuditLog(store, signer=log_signer(app.settings)).verify()
    result = report.to_json()
    first = report.first
    result.update(
        at=started.isoformat(),
        by=user.describe(),
        first=None
        if first is None
        else f"{first.message}" + ("" if first.index is None else f" at index {first.index}"),
    )
    path = app.settings.data_dir / _LAST_VERIFY
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    return RedirectResponse("/integrity", status_code=303)


# -- protocol and explain ----------------------------------------------------------------------


@router.get("/protocol", response_class=HTMLResponse)
def protocol_page(request: Request) -> Response:
    """Parties, rules, lawful bases, review dates and the checker's warnings."""
    require(request)
    app = console(request)
    today = app.now().date()
    protocol = load_protocol(app.settings.protocol)
    check = check_protocol(app.settings.protocol, SchemaRegistry(), today=today)
    return render(
        request,
        "protocol.html",
        {"protocol": protocol, "check": check, "today": today},
    )


@router.get("/explain", response_class=HTMLResponse)
def explain_form(request: Request) -> Response:
    """The form: paste a sample event, pick a party."""
    require(request)
    return _explain_page(request, sample="", party="", result=None, errors=[])


@router.post("/explain", response_class=HTMLResponse)
def explain_post(
    request: Request,
    sample: Annotated[str, Form()] = "",
    party: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """What ``party`` would receive for the pasted event, and which rule decides."""
    check_csrf(request, csrf_token)
    require(request)
    errors: list[str] = []
    result = None
    try:
        event = json.loads(sample)
    except json.JSONDecodeError as exc:
        event = None
        errors.append(f"The sample is not valid JSON: {exc.msg} at line {exc.lineno}.")
    if event is not None and (
        not isinstance(event, dict)
        or not {"type", "source", "data"} <= set(event)
        or not isinstance(event["data"], dict)
    ):
        errors.append('The sample must be an object with "type", "source" and "data" (an object).')
    if not errors:
        assert isinstance(event, dict)  # noqa: S101 (narrowing: checked just above)
        try:
            result = explain(
                load_protocol(console(request).settings.protocol),
                SchemaRegistry(),
                event_type=str(event["type"]),
                publisher=str(event["source"]),
                data=event["data"],
                as_party=party,
            )
        except HubError as exc:
            errors.append(str(exc))
    status = 400 if errors else 200
    return _explain_page(
        request, sample=sample, party=party, result=result, errors=errors, status=status
    )


def _explain_page(
    request: Request,
    *,
    sample: str,
    party: str,
    result: Any,
    errors: list[str],
    status: int = 200,
) -> Response:
    protocol = load_protocol(console(request).settings.protocol)
    return render(
        request,
        "explain.html",
        {
            "sample": sample,
            "party": party,
            "parties": protocol.party_ids,
            "result": result,
            "payload": json.dumps(result.payload, indent=2, sort_keys=True)
            if result is not None and result.payload is not None
            else None,
            "errors": errors,
        },
        status=status,
    )
