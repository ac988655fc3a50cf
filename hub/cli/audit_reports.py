"""`hub audit sar|chronology|recipients|volumes|exempt`: the IG officer's reports.

Each report prints a readable table by default, one JSON document with ``--json`` (for a
case management system), or CSV with a header row with ``--csv`` (for a spreadsheet or
the response letter). The report logic lives in ``hub.audit.reports`` and the CSV in
``hub.audit.report_csv`` (shared with the web console); this module only opens the store,
picks the format and prints.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from hub.audit import report_csv, reports
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import AuditStore, open_store
from hub.cli.audit_consult import OperatorOpt, PurposeOpt, ReasonOpt, justify, require_store
from hub.cli.common import fail, handle_errors, load_settings
from hub.settings import HubSettings

__all__ = ["register"]

_JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON document")]
_CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV with a header row")]


def register(app: typer.Typer) -> None:
    """Add the IG report commands to the `hub audit` group."""
    app.command("sar")(handle_errors(sar))
    app.command("chronology")(handle_errors(chronology))
    app.command("recipients")(handle_errors(recipients))
    app.command("volumes")(handle_errors(volumes))
    app.command("exempt")(handle_errors(exempt))


# -- commands ------------------------------------------------------------------------------


def sar(
    subject: Annotated[
        str,
        typer.Option(
            "--subject", help='subject reference (pseudonymised here); Pub Watch: "name|YYYY-MM-DD"'
        ),
    ],
    as_json: _JsonOpt = False,
    as_csv: _CsvOpt = False,
    operator: OperatorOpt = None,
    purpose: PurposeOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Subject access: every disclosure about a person, and what is withheld and why.

    Due within one month of the request (UK GDPR Art 15, DPA 2018 s45). Shows personal
    data: names the operator, purpose and reason and is itself audited (DPA 2018 s62).
    """
    fmt = _format(as_json, as_csv)
    settings = _settings_with_store()
    consultation = justify("sar", operator=operator, purpose=purpose, reason=reason)
    pseudonymiser = _pseudonymiser(settings)
    with _store(settings) as store:
        report = reports.subject_access(store, pseudonymiser, subject)
        consultation.record(
            store,
            _what("subject access report", fmt),
            subject_pseudonym=report.subject_pseudonym,
        )
    if fmt == "csv" and report.pruned:
        typer.echo(f"note: {report.pruned.text()}", err=True)
    if fmt == "json":
        _echo_document(report.model_dump(mode="json"))
    elif fmt == "csv":
        typer.echo(report_csv.sar_csv(report), nl=False)
    else:
        typer.echo(_sar_text(report))


def chronology(
    case: Annotated[str, typer.Option("--case", help="MARAC case, intel or ban reference")],
    as_json: _JsonOpt = False,
    as_csv: _CsvOpt = False,
    operator: OperatorOpt = None,
    purpose: PurposeOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Domestic Homicide Review chronology: what each agency received and acknowledged, when.

    Shows personal data: names the operator, purpose and reason and is itself audited.
    """
    fmt = _format(as_json, as_csv)
    settings = _settings_with_store()
    consultation = justify("chronology", operator=operator, purpose=purpose, reason=reason)
    pseudonymiser = _pseudonymiser(settings)
    with _store(settings) as store:
        report = reports.chronology(store, pseudonymiser, case)
        consultation.record(
            store, _what("case chronology", fmt), case_pseudonym=report.case_pseudonym
        )
    if fmt == "csv" and report.pruned:
        typer.echo(f"note: {report.pruned.text()}", err=True)
    if fmt == "json":
        _echo_document(report.model_dump(mode="json"))
    elif fmt == "csv":
        typer.echo(report_csv.chronology_csv(report), nl=False)
    else:
        typer.echo(_chronology_text(report))


def recipients(
    event: Annotated[str, typer.Option("--event", help="event id")],
    as_json: _JsonOpt = False,
    as_csv: _CsvOpt = False,
    operator: OperatorOpt = None,
    purpose: PurposeOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Every party that received an event: pass on corrections and erasures (UK GDPR Art 19).

    Shows personal data: names the operator, purpose and reason and is itself audited.
    """
    fmt = _format(as_json, as_csv)
    settings = _settings_with_store()
    consultation = justify("recipients", operator=operator, purpose=purpose, reason=reason)
    with _store(settings) as store:
        pruned = reports.pruned_note(store)
        if not store.has_event(event):
            hint = f" ({pruned.text()})" if pruned else ""
            raise fail(
                f"event {event}: no audit records, expected an event id the hub routed{hint}"
            )
        found = reports.recipients(store, event)
        consultation.record(store, _what("event recipients", fmt), event_id=event)
    if pruned and fmt != "json":
        typer.echo(f"note: {pruned.text()}", err=True)
    if fmt == "json":
        _echo_document(
            {
                "event_id": event,
                "recipients": [r.model_dump(mode="json") for r in found],
                "pruned": pruned.model_dump(mode="json") if pruned else None,
            }
        )
    elif fmt == "csv":
        _echo_csv(
            (
                "recipient",
                "time",
                "rule",
                "lawful_basis",
                "fields",
                "payload_sha256",
                "acknowledged",
                "acknowledged_at",
                "record_id",
            ),
            [
                (
                    r.recipient,
                    r.time,
                    r.rule,
                    r.lawful_basis,
                    _join(r.fields),
                    r.payload_sha256,
                    "yes" if r.acknowledged else "no",
                    r.acknowledged_at,
                    r.record_id,
                )
                for r in found
            ],
        )
    elif not found:
        typer.echo(f"event {event} was delivered to no party")
    else:
        typer.echo(
            _table(
                ("RECIPIENT", "TIME", "RULE", "FIELDS", "PAYLOAD SHA-256", "ACKNOWLEDGED"),
                [
                    (
                        r.recipient,
                        _when(r.time),
                        r.rule,
                        _join(r.fields),
                        r.payload_sha256,
                        _when(r.acknowledged_at) if r.acknowledged_at else "no",
                    )
                    for r in found
                ],
            )
        )


def volumes(
    since: Annotated[
        datetime,
        typer.Option("--since", help="count records at or after this date (YYYY-MM-DD, UTC)"),
    ],
    as_json: _JsonOpt = False,
    as_csv: _CsvOpt = False,
) -> None:
    """Deliveries and withholdings per rule and party since a date (protocol review)."""
    fmt = _format(as_json, as_csv)
    settings = _settings_with_store()
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    with _store(settings) as store:
        rows = reports.volumes(store, since)
        pruned = reports.pruned_note(store, since=since)
    if pruned and fmt != "json":
        typer.echo(f"note: {pruned.text()}; counts start there", err=True)
    if fmt == "json":
        _echo_document(
            {
                "since": since.isoformat(),
                "volumes": [r.model_dump(mode="json") for r in rows],
                "pruned": pruned.model_dump(mode="json") if pruned else None,
            }
        )
    elif fmt == "csv":
        _echo_csv(
            ("rule", "recipient", "delivered", "withheld"),
            [(r.rule, r.recipient, r.delivered, r.withheld) for r in rows],
        )
    elif not rows:
        typer.echo(f"no deliveries or withholdings since {_when(since)}")
    else:
        table = [(r.rule, r.recipient, str(r.delivered), str(r.withheld)) for r in rows]
        total = (
            "TOTAL",
            "",
            str(sum(r.delivered for r in rows)),
            str(sum(r.withheld for r in rows)),
        )
        typer.echo(_table(("RULE", "RECIPIENT", "DELIVERED", "WITHHELD"), [*table, total]))


def exempt(
    record: Annotated[str, typer.Option("--record", help="record id of the delivery (from sar)")],
    exemption: Annotated[
        str, typer.Option("--exemption", help='exemption relied on, e.g. "DPA 2018 Sch 2 para 2"')
    ],
    reason: Annotated[str, typer.Option("--reason", help="why it applies to this delivery")],
    officer: Annotated[str, typer.Option("--officer", help="the deciding IG officer")],
) -> None:
    """Withhold one delivery from subject access responses; the decision is itself audited."""
    settings = _settings_with_store()
    with _store(settings) as store:
        marked = reports.mark_exempt(
            store, record_id=record, exemption=exemption, reason=reason, officer=officer
        )
    typer.echo(f"exempted {record} from subject access (audit record {marked.record_id})")
    typer.echo(f"  {marked.reason}")


# -- plumbing ------------------------------------------------------------------------------


def _format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise fail("output format: expected one of --json and --csv, got both")
    return "json" if as_json else "csv" if as_csv else "text"


def _settings_with_store() -> HubSettings:
    """Settings, refusing early (before anything is created) if the data dir holds no hub."""
    settings = load_settings()
    require_store(settings)
    return settings


def _what(view: str, fmt: str) -> str:
    """What a consulted record says was viewed: the console's words, and the format."""
    return view if fmt == "text" else f"{view} ({fmt.upper()})"


@contextlib.contextmanager
def _store(settings: HubSettings) -> Iterator[AuditStore]:
    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


def _pseudonymiser(settings: HubSettings) -> Pseudonymiser:
    # The key never leaves this process: only pseudonyms reach the store's query.
    return Pseudonymiser(load_pseudonym_key(settings, create=False))


def _echo_document(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


def _echo_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    typer.echo(report_csv.to_csv(header, rows), nl=False)


def _join(fields: Sequence[str]) -> str:
    return ",".join(fields)


def _when(value: datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str | None]]) -> str:
    cells = [tuple(headers), *(tuple("-" if c is None else c for c in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)
    return "\n".join(line.rstrip() for line in lines)


def _sar_text(report: reports.SubjectAccessReport) -> str:
    lines = [
        f"Subject access report for {report.subject_pseudonym}, "
        f"generated {_when(report.generated_at)}",
        "",
        f"Disclosures ({len(report.disclosures)}):",
    ]
    if report.disclosures:
        lines.append(
            _table(
                (
                    "TIME",
                    "EVENT",
                    "TYPE",
                    "PUBLISHER -> RECIPIENT",
                    "RULE",
                    "LAWFUL BASIS",
                    "FIELDS",
                ),
                [
                    (
                        _when(d.time),
                        d.event_id,
                        d.event_type,
                        f"{d.publisher or '-'} -> {d.recipient or '-'}",
                        d.rule,
                        d.lawful_basis,
                        _join(d.fields),
                    )
                    for d in report.disclosures
                ],
            )
        )
    else:
        lines.append("  none recorded")
    withheld = report.withheld_from_response
    lines += ["", f"Withheld from this response ({len(withheld)}):"]
    for entry in withheld:
        lines.append(f"  delivery {entry.delivery_record_id}:")
        lines += [f"    {_when(e.time)}  {e.reason}" for e in entry.exemptions]
    if not withheld:
        lines.append("  none")
    if report.pruned:
        lines += ["", f"Note: {report.pruned.text()}."]
    return "\n".join(lines)


def _chronology_text(report: reports.Chronology) -> str:
    lines = [f"Chronology for case {report.case_pseudonym} ({len(report.entries)} events)"]
    if report.pruned:
        lines.append(f"Note: {report.pruned.text()}.")
    if not report.entries:
        lines.append("  no events recorded for this case")
    for e in report.entries:
        when = _when(e.event_time) if e.event_time else "time unknown"
        lines += ["", f"{when}  {e.event_id}  {e.event_type or '-'}  from {e.publisher or '-'}"]
        rows: list[Sequence[str | None]] = [
            (
                "received",
                r.recipient,
                _when(r.time),
                r.rule,
                _join(r.fields),
                f"acknowledged {_when(r.acknowledged_at)}"
                if r.acknowledged_at
                else "not acknowledged",
            )
            for r in e.received
        ]
        rows += [("withheld", w.recipient, _when(w.time), w.rule, "", w.reason) for w in e.withheld]
        if rows:
            table = _table(("", "PARTY", "TIME", "RULE", "FIELDS", "ACKNOWLEDGED / REASON"), rows)
            lines += ["  " + line for line in table.splitlines()]
    return "\n".join(lines)
