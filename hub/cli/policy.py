"""`hub policy check` and `hub policy explain`: prove a protocol safe, then see what it does.

Both read the protocol path from settings at run time (never at import), so ``HUB_PROTOCOL``
and ``hub.toml`` apply; bad input becomes one ``HubError`` line via ``handle_errors``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.cli.common import DryRun, echo_json, echo_sweep, handle_errors, load_settings
from hub.clock import clock_for
from hub.errors import EventError, EventValidationError
from hub.policies.check import check_protocol
from hub.policies.explain import Explanation, explain
from hub.policies.loader import load_protocol
from hub.schemas.codec import SchemaRegistry
from hub.state import has_state, open_agreement_alerts
from hub.workflows.agreements import agreement_states, sweep_agreements

__all__ = ["app"]

app = typer.Typer(
    help="Check a sharing protocol and explain what it discloses to whom.",
    no_args_is_help=True,
)

_JSON = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


@app.command("check")
@handle_errors
def check_command(
    path: Annotated[
        Path | None,
        typer.Argument(help="Protocol YAML file (default: the configured HUB_PROTOCOL)."),
    ] = None,
    as_json: _JSON = False,
    today: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="check as of this date (plan ahead: which agreements will lapse by then?)",
        ),
    ] = None,
) -> None:
    """Reject an unsafe protocol, naming each problem's file and line.

    Warns when the protocol or an information sharing agreement is within 30 days of its
    review date, and when one has passed it (its rules are then suspended by the hub).
    Exit status 1 when there is any error; warnings alone exit 0.
    """
    settings = load_settings()
    target = path if path is not None else settings.protocol
    on = today.date() if today is not None else clock_for(settings.clock_file)().date()
    report = check_protocol(target, SchemaRegistry(), today=on)
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        for line in report.lines():
            typer.echo(line)
        verdict = "FAILED" if report.errors else "ok"
        typer.echo(
            f"{target}: {verdict}: {_count(len(report.errors), 'error')}, "
            f"{_count(len(report.warnings), 'warning')}"
        )
    if report.errors:
        raise typer.Exit(1)


@app.command("explain")
@handle_errors
def explain_command(
    event: Annotated[
        str,
        typer.Option(
            "--event",
            metavar="FILE",
            help='JSON file {"type": ..., "source": PARTY, "data": {...}}, or - for stdin.',
        ),
    ],
    as_party: Annotated[
        str, typer.Option("--as", metavar="PARTY", help="The party whose view to explain.")
    ],
    protocol: Annotated[
        Path | None,
        typer.Option("--protocol", help="Protocol YAML file (default: HUB_PROTOCOL)."),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Show exactly what PARTY would receive for a sample event, and which rule decides."""
    sample = _read_event(event)
    loaded = load_protocol(protocol if protocol is not None else load_settings().protocol)
    result = explain(
        loaded,
        SchemaRegistry(),
        event_type=sample["type"],
        publisher=sample["source"],
        data=sample["data"],
        as_party=as_party,
    )
    if as_json:
        echo_json(result.model_dump(mode="json"))
    else:
        typer.echo(_render(result))


@app.command("parties")
@handle_errors
def parties_command(
    protocol: Annotated[
        Path | None,
        typer.Option("--protocol", help="Protocol YAML file (default: HUB_PROTOCOL)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per party.")] = False,
) -> None:
    """List every party of the protocol: id, kind, district, roles and display name.

    The ids are what ``--as`` and ``--party`` take.
    """
    loaded = load_protocol(protocol if protocol is not None else load_settings().protocol)
    if as_json:
        for party in loaded.parties:
            echo_json({**party.model_dump(mode="json"), "label": party.label})
        return
    rows = [("ID", "KIND", "DISTRICT", "ROLES", "NAME")]
    rows += [
        (p.id, p.kind, p.district or "-", ",".join(p.roles) or "-", p.label) for p in loaded.parties
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[4]]))
    count = len(loaded.parties)
    typer.echo(f"{count} part{'y' if count == 1 else 'ies'} in protocol {loaded.protocol.id}")


@app.command("agreements")
@handle_errors
def agreements_command(as_json: _JSON = False) -> None:
    """Each agreement in force: review date, days left, state, and the IG alerts sent.

    State is ok, due (within the first review notice, 30 days by default) or suspended (past
    its review date: the hub withholds what its rules would share). Exit status 1 when any
    agreement is due or suspended.
    """
    settings = load_settings()
    today = clock_for(settings.clock_file)().date()
    states = agreement_states(load_protocol(settings.protocol), today)
    alerts: dict[str, list[str]] = {s.agreement.id: [] for s in states}
    if has_state(settings):  # a read: never creates the hub's files
        with open_agreement_alerts(settings) as register:
            for s in states:
                alerts[s.agreement.id] = register.sent_for(s.agreement.id, s.agreement.review_date)
    if as_json:
        echo_json(
            {
                "today": today.isoformat(),
                "agreements": [
                    {**s.to_json(), "alerts_sent": alerts[s.agreement.id]} for s in states
                ],
            }
        )
    else:
        for s in states:
            sent = ", ".join(alerts[s.agreement.id]) or "none"
            typer.echo(
                f"{s.agreement.id}  review {s.agreement.review_date}  {s.days_left} days  "
                f"{s.state.upper() if s.state != 'ok' else 'ok'}  alerts sent: {sent}"
            )
    if any(s.state != "ok" for s in states):
        raise typer.Exit(1)


@app.command("sweep")
@handle_errors
def sweep_command(dry_run: DryRun = False, as_json: _JSON = False) -> None:
    """Alert the IG role to agreements due for review or suspended, now.

    The running hub does the same every ``HUB_WORKFLOW_INTERVAL`` seconds; each alert is sent
    once (30 and 7 days before the review date, and on the day of suspension).
    """
    verb = "would alert" if dry_run else "alerted"
    echo_sweep(
        sweep_agreements(load_settings(), dry_run=dry_run),
        as_json=as_json,
        line=lambda item: f"{verb}: agreement {item['agreement_id']} ({item['stage']})",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _read_event(name: str) -> dict[str, Any]:
    """Read and shape-check the sample event, so mistakes read as one actionable line."""
    where = "stdin" if name == "-" else f"event file {name}"
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise EventError(f"{where}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise EventValidationError(f"{where}: expected UTF-8 JSON, got undecodable bytes") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventValidationError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(doc, dict):
        raise EventValidationError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in ("type", "source", "data") if k not in doc]
    if missing:
        raise EventValidationError(
            f"{where}: expected keys type, source and data, missing {', '.join(missing)}"
        )
    for key, kind in (("type", str), ("source", str), ("data", dict)):
        if not isinstance(doc[key], kind):
            raise EventValidationError(
                f"{where}: {key}: expected a JSON {'object' if kind is dict else 'string'}, "
                f"got {type(doc[key]).__name__}"
            )
    return doc


def _render(result: Explanation) -> str:
    head = f"{result.party} <- {result.event_type} from {result.publisher}"
    if result.outcome != "deliver":
        lines = [
            head,
            f"outcome: {result.outcome} (receives nothing)",
            f"decided by: {result.rule_id or 'default deny'}",
            f"reason: {result.reason}",
        ]
        return "\n".join(lines)
    lines = [
        head,
        "outcome: deliver",
        f"decided by: rule {result.rule_id}",
        f"gateway: {result.gateway or 'none cited (the lawful basis alone)'}",
        f"lawful basis: {result.lawful_basis}",
    ]
    for label, value in (
        ("condition", result.condition),
        ("purpose", result.purpose),
        ("retention", result.retention),
    ):
        if value:
            lines.append(f"{label}: {value}")
    lines.append(f"fields allowed: {', '.join(result.fields)}")
    lines.append(f"removed: {', '.join(result.removed) or 'nothing'}")
    lines.append("receives:")
    lines.append(json.dumps(result.payload, indent=2, sort_keys=True))
    return "\n".join(lines)
