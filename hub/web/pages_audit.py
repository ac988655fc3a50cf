"""Audit pages: search with paging, one event's records, subject access and chronology.

Each page that lists audit records (a search of any kind, an event's records, a subject's or
a case's records) asks for a justification first and writes a ``consulted`` audit record per
view (``hub.web.consult``). The reports are ``hub.audit.reports`` and their CSV is
``hub.audit.report_csv``, exactly as ``hub audit sar|chronology --csv`` prints them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from hub.audit import report_csv, reports
from hub.audit.store import AuditStore
from hub.clock import utc
from hub.models import AuditDecision, AuditRecord
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.web.access import MARAC_PREFIX, can_open_event, visible_records
from hub.web.accounts import Role
from hub.web.consult import record_consultation
from hub.web.context import console, justified, render, require

__all__ = ["PAGE_SIZE", "SEARCH_CAP", "router"]

router = APIRouter()

PAGE_SIZE = 50
#: most records one search reads: ``AuditStore.query`` has no offset, rule or end-time
#: filter, so those are applied here over at most this many matches (narrow by time)
SEARCH_CAP = 20_000


@dataclass(frozen=True)
class _Search:
    event: str
    party: str
    subject: str
    case: str
    rule: str
    decision: str
    since: str
    until: str
    page: int

    def args(self, **changes: Any) -> str:
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


@router.get("/audit", response_class=HTMLResponse)
def audit_search(
    request: Request,
    event: str = "",
    party: str = "",
    subject: str = "",
    case: str = "",
    rule: str = "",
    decision: str = "",
    since: str = "",
    until: str = "",
    page: int = 1,
) -> Response:
    """Search the audit by event, party, subject or case reference, rule, decision, time."""
    user = require(request)
    app = console(request)
    if user.role is Role.AGENCY_USER:
        party = user.party or ""  # an agency user searches their own party's records only
    form = _Search(
        event.strip(),
        party.strip(),
        subject.strip(),
        case.strip(),
        rule.strip(),
        decision,
        since.strip(),
        until.strip(),
        max(page, 1),
    )
    errors: list[str] = []
    start, end = _time(form.since, "From", errors), _time(form.until, "To", errors)
    if decision and decision not in AuditDecision.__members__.values():
        errors.append("Choose a decision from the list.")
    context: dict[str, Any] = {
        "form": form,
        "decisions": [d.value for d in AuditDecision],
        "errors": errors,
        "searched": bool(request.url.query) and not errors,
        "records": [],
        "agency_party": user.party if user.role is Role.AGENCY_USER else None,
    }
    if not context["searched"]:
        return render(request, "audit.html", context)
    pseudonymiser = app.pseudonymiser()
    subject_ps = (
        pseudonymiser.subject(reports.normalise_subject_ref(form.subject)) if form.subject else None
    )
    case_ps = pseudonymiser.case(form.case) if form.case else None
    # Every search that lists records is a consultation (DPA 2018 s62): the records name
    # parties, rules and events about people. The grant is keyed by what was looked up, so
    # a search by event and that event's page share one justification.
    key, what = _search_grant(form, subject_ps=subject_ps, case_ps=case_ps)
    grant = justified(request, key, what)
    if isinstance(grant, Response):
        return grant
    with app.store() as store:
        matches = store.query(
            event_id=form.event or None,
            party=form.party or None,
            subject_pseudonym=subject_ps,
            case_pseudonym=case_ps,
            decision=decision or None,
            since=start,
            limit=SEARCH_CAP + 1,
        )
        record_consultation(
            store,
            viewer=user,
            grant=grant,
            what=_search_described(form, load_protocol(app.settings.protocol)),
            now=app.now(),
            event_id=form.event or None,
            subject_pseudonym=subject_ps,
            case_pseudonym=case_ps,
        )
    truncated = len(matches) > SEARCH_CAP
    matches = [
        r
        for r in matches[:SEARCH_CAP]
        if (not form.rule or r.rule == form.rule) and (end is None or utc(r.time) <= end)
    ]
    matches = visible_records(user, matches)
    pages = max(1, -(-len(matches) // PAGE_SIZE))
    current = min(form.page, pages)
    context.update(
        records=matches[(current - 1) * PAGE_SIZE : current * PAGE_SIZE],
        total=len(matches),
        truncated=truncated,
        cap=SEARCH_CAP,
        page=current,
        pages=pages,
        prev_url=f"/audit?{form.args(page=current - 1)}" if current > 1 else None,
        next_url=f"/audit?{form.args(page=current + 1)}" if current < pages else None,
    )
    return render(request, "audit.html", context)


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_detail(request: Request, event_id: str) -> Response:
    """Every audit record of one event this user may see (justified, and audited)."""
    user = require(request)
    app = console(request)
    with app.store() as store:
        records = store.query(event_id=event_id, limit=SEARCH_CAP)
        if not records:
            raise HTTPException(status_code=404, detail=f"No audit records for event {event_id}.")
        if not can_open_event(user, records):
            raise HTTPException(
                status_code=403, detail="This event is not one your party published or received."
            )
        grant = justified(request, f"event:{event_id}", f"the audit records of event {event_id}")
        if isinstance(grant, Response):
            return grant
        record_consultation(
            store, viewer=user, grant=grant, what="event detail", now=app.now(), event_id=event_id
        )
    shown = visible_records(user, records)
    return render(request, "event.html", {"event_id": event_id, "records": shown})


@router.get("/reports/sar", response_class=HTMLResponse)
def subject_access(request: Request, subject: str = "", print: str = "") -> Response:
    """Subject access report: every disclosure about a person (UK GDPR Art 15)."""
    require(request, Role.IG_OFFICER)
    subject = subject.strip()
    if not subject:
        return render(request, "sar.html", {"subject": "", "report": None})
    found = _sar(request, subject, "subject access report")
    if isinstance(found, Response):
        return found
    return render(
        request,
        "sar.html",
        {
            "subject": subject,
            "report": found,
            "print": bool(print),
            "query": urlencode({"subject": subject}),
        },
    )


@router.get("/reports/sar.csv")
def subject_access_csv(request: Request, subject: str) -> Response:
    """The subject access report as CSV (the same columns as ``hub audit sar --csv``)."""
    require(request, Role.IG_OFFICER)
    found = _sar(request, subject.strip(), "subject access report (CSV)")
    if isinstance(found, Response):
        return found
    return _csv(report_csv.sar_csv(found), "subject-access.csv")


@router.get("/reports/chronology", response_class=HTMLResponse)
def chronology(request: Request, case: str = "", print: str = "") -> Response:
    """DHR chronology of a case across agencies (a coordinator sees its MARAC events)."""
    require(request, Role.IG_OFFICER, Role.MARAC_COORDINATOR)
    case = case.strip()
    if not case:
        return render(request, "chronology.html", {"case": "", "report": None})
    found = _chronology(request, case, "case chronology")
    if isinstance(found, Response):
        return found
    return render(
        request,
        "chronology.html",
        {
            "case": case,
            "report": found,
            "print": bool(print),
            "query": urlencode({"case": case}),
        },
    )


@router.get("/reports/chronology.csv")
def chronology_csv(request: Request, case: str) -> Response:
    """The chronology as CSV (the same columns as ``hub audit chronology --csv``)."""
    require(request, Role.IG_OFFICER, Role.MARAC_COORDINATOR)
    found = _chronology(request, case.strip(), "case chronology (CSV)")
    if isinstance(found, Response):
        return found
    return _csv(report_csv.chronology_csv(found), "chronology.csv")


# -- helpers -------------------------------------------------------------------------------


def _search_grant(form: _Search, *, subject_ps: str | None, case_ps: str | None) -> tuple[str, str]:
    """The justification a search needs: its key for this sign-in and what the form names.

    A person or a case first (the most specific), then an event; any other search (by
    party, rule, decision or time) shares one justification per sign-in.
    """
    if subject_ps:
        return f"subject:{subject_ps}", "audit records about a subject"
    if case_ps:
        return f"case:{case_ps}", "audit records about a case"
    if form.event:
        return f"event:{form.event}", f"the audit records of event {form.event}"
    return "audit-search", "audit records found by a search"


def _search_described(form: _Search, protocol: Protocol) -> str:
    """``audit search`` and its filters, for the consultation record's reason.

    Decision, times and page are no one's personal data, and nor are the protocol's own
    party and rule ids; but party and rule are free text, so any other value typed there
    is named only as "other" (it could be a reference typed in the wrong box, and a
    reference in clear must never reach the store). The event id is the record's own
    ``event_id``, and the subject and case go in only as pseudonyms.
    """
    rules = {rule.id for rule in protocol.rules}
    filters = {
        "party": form.party if form.party in protocol.party_ids else form.party and "other",
        "rule": form.rule if form.rule in rules else form.rule and "other",
        "decision": form.decision,
        "from": form.since,
        "to": form.until,
    }
    named = ", ".join(f"{k} {v}" for k, v in filters.items() if v)
    page = f", page {form.page}" if form.page > 1 else ""
    return f"audit search ({named or 'no filter'}{page})"


def _sar(request: Request, subject: str, what: str) -> reports.SubjectAccessReport | Response:
    app = console(request)
    user = require(request)
    pseudonymiser = app.pseudonymiser()
    pseudonym = pseudonymiser.subject(reports.normalise_subject_ref(subject))
    grant = justified(request, f"subject:{pseudonym}", "a subject access report")
    if isinstance(grant, Response):
        return grant
    with app.store() as store:
        report = reports.subject_access(store, pseudonymiser, subject)
        _consulted(store, request, what, subject_pseudonym=pseudonym, grant=grant, viewer=user)
    return report


def _chronology(request: Request, case: str, what: str) -> reports.Chronology | Response:
    app = console(request)
    user = require(request)
    pseudonymiser = app.pseudonymiser()
    pseudonym = pseudonymiser.case(case)
    grant = justified(request, f"case:{pseudonym}", "a case chronology")
    if isinstance(grant, Response):
        return grant
    with app.store() as store:
        report = reports.chronology(store, pseudonymiser, case)
        _consulted(store, request, what, case_pseudonym=pseudonym, grant=grant, viewer=user)
    if user.role is Role.MARAC_COORDINATOR:
        entries = tuple(e for e in report.entries if (e.event_type or "").startswith(MARAC_PREFIX))
        report = report.model_copy(update={"entries": entries})
    return report


def _consulted(store: AuditStore, request: Request, what: str, **kwargs: Any) -> AuditRecord:
    return record_consultation(store, what=what, now=console(request).now(), **kwargs)


def _csv(text: str, filename: str) -> Response:
    return Response(
        content=text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _time(text: str, label: str, errors: list[str]) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        errors.append(f"{label}: enter a date and time like 2026-11-23T09:00.")
        return None
    return utc(value)
