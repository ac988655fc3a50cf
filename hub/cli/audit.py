"""`hub audit ...` commands: read the audit store while a hub writes it."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer

from hub.audit import rows
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store
from hub.audit.subjects import person_ref
from hub.cli.audit_consult import OperatorOpt, PurposeOpt, ReasonOpt, justify, require_store
from hub.cli.common import echo_json, handle_errors, load_settings
from hub.models import AuditDecision, AuditRecord
from hub.policies.loader import load_protocol
from hub.settings import HubSettings

app = typer.Typer(
    help="Read the audit log: who received what, under which rule.", no_args_is_help=True
)

#: WHO and WHY answer "who saw it, and why, or why not" for records of every kind (rows.py)
_HEADERS = ("TIME", "EVENT", "TYPE", "DECISION", "WHO", "WHY")


@app.callback()
def _group() -> None:
    """Keep ``audit`` a command group even while it holds a single command."""


@app.command("query")
@handle_errors
def query(
    event: Annotated[str | None, typer.Option("--event", help="event id")] = None,
    party: Annotated[
        str | None, typer.Option("--party", help="party id, as recipient or publisher")
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help='subject reference (pseudonymised here); Pub Watch: "name|YYYY-MM-DD"',
        ),
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="case, intel or ban reference")] = None,
    decision: Annotated[
        AuditDecision | None, typer.Option("--decision", case_sensitive=False)
    ] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="records at or after (naive = UTC)")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most N records")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    operator: OperatorOpt = None,
    purpose: PurposeOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Audit records matching every filter given, oldest first.

    Shows personal data: names the operator, purpose and reason (asked for on a terminal)
    and appends a consulted audit record first (DPA 2018 s62).
    """
    settings = load_settings()
    require_store(settings)
    consultation = justify("query", operator=operator, purpose=purpose, reason=reason)
    subject_pseudonym = case_pseudonym = None
    if subject is not None or case is not None:
        # The key never leaves this process: only pseudonyms reach the store's query.
        pseudonymiser = Pseudonymiser(load_pseudonym_key(settings, create=False))
        if subject is not None:
            subject_pseudonym = pseudonymiser.subject(_subject_ref(subject))
        if case is not None:
            case_pseudonym = pseudonymiser.case(case)
    with contextlib.closing(open_store(settings)) as store:
        records = store.query(
            event_id=event,
            party=party,
            subject_pseudonym=subject_pseudonym,
            case_pseudonym=case_pseudonym,
            decision=decision,
            since=since,
            limit=limit,
        )
        consultation.record(
            store,
            _described(settings, party=party, decision=decision, since=since, limit=limit),
            event_id=event,
            subject_pseudonym=subject_pseudonym,
            case_pseudonym=case_pseudonym,
        )
    if not records:
        typer.echo("no audit records match", err=True)
        return
    if as_json:
        for record in records:
            echo_json(record.model_dump(mode="json"))
    else:
        typer.echo(_table(records))


def _described(
    settings: HubSettings,
    *,
    party: str | None,
    decision: AuditDecision | None,
    since: datetime | None,
    limit: int,
) -> str:
    """``audit query`` and its filters, for the consulted record's reason.

    As the console's search: a party the protocol does not declare is named only as
    "other" (it could be a reference typed in the wrong place, and no reference in clear
    may reach the store); the event, subject and case go in their own columns, the last
    two as pseudonyms.
    """
    filters = []
    if party is not None:
        known = party in load_protocol(settings.protocol).party_ids
        filters.append(f"party {party if known else 'other'}")
    if decision is not None:
        filters.append(f"decision {decision.value}")
    if since is not None:
        filters.append(f"since {since.isoformat()}")
    filters.append(f"limit {limit}")
    return f"audit query ({', '.join(filters)}, command line)"


def _subject_ref(ref: str) -> str:
    """Normalise a Pub Watch person ("name|date") the way the hub did when it audited."""
    name, sep, dob = ref.rpartition("|")
    return person_ref(name, dob) if sep else ref


def _table(records: Sequence[AuditRecord]) -> str:
    rows = [_HEADERS, *(_cells(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _cells(record: AuditRecord) -> tuple[str, ...]:
    time = record.time if record.time.tzinfo else record.time.replace(tzinfo=UTC)
    row = rows.describe(record)
    return (
        time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        record.event_id,
        record.event_type or "-",
        record.decision.value,
        row.who(),
        " ".join(row.because().split()),  # one line per record, whatever the reason holds
    )


def _register_more() -> None:
    """Commands kept in their own modules (integrity, IG reports, retention, reconcile)."""
    from hub.cli import audit_integrity, audit_reconcile, audit_reports, audit_retention

    audit_integrity.register(app)
    audit_reports.register(app)
    audit_retention.register(app)
    audit_reconcile.register(app)


_register_more()
