"""`hub asb status|sweep|report`: ASB Case Reviews (the Community Trigger).

``status`` answers the coordinator's questions: each case's stage, every deadline of its stage
(in working days, England and Wales bank holidays skipped), which are overdue and which the
hub escalated, and each body's actions. ``sweep`` does now what the running hub does every
``HUB_WORKFLOW_INTERVAL`` seconds: publish threshold decisions whose answers are all in, and
escalate missed deadlines. ``report --year`` prints the year's figures for the scrutiny panel,
counted from the audit log.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.audit.store import open_store
from hub.cli.common import DryRun, echo_json, echo_sweep, handle_errors, load_settings
from hub.clock import clock_for
from hub.policies.loader import load_protocol
from hub.state import open_asb_register
from hub.workflows.asb.report import CaseReport, case_status, yearly_figures
from hub.workflows.asb.sweep import policy_of, sweep_asb

__all__ = ["app"]

app = typer.Typer(
    help="ASB Case Reviews: cases, stages, deadlines, escalations and yearly figures.",
    no_args_is_help=True,
)
_JSON = Annotated[bool, typer.Option("--json", help="one JSON document")]


def _print(report: CaseReport) -> None:
    c = report.case
    threshold = {None: "threshold pending", True: "threshold met", False: "threshold not met"}[
        c.threshold_met
    ]
    extra = f"  appeal {c.appeal_ref}" if c.appeal_ref else ""
    typer.echo(
        f"{c.case_ref}  {c.stage}  {c.district}  received {c.received_on}  {threshold}{extra}"
    )
    for d in report.deadlines:
        if d.done_on is not None:
            state = f"done {d.done_on}" + ("  (LATE)" if d.late else "")
        elif d.overdue(report.today):
            state = f"OVERDUE since {d.due_on}"
        else:
            state = f"due {d.due_on}"
        typer.echo(f"  {d.kind:18} {d.party:34} {state}")
    if report.escalated:
        typer.echo(f"  escalated: {', '.join(report.escalated)}")


@app.command("status")
@handle_errors
def status_command(
    case: Annotated[str | None, typer.Option("--case", help="one case reference")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="include closed cases")] = False,
    as_json: _JSON = False,
) -> None:
    """Per case: stage, deadlines, overdue items, escalations and actions.

    Exit status 1 when any deadline is overdue, so a scheduled job can alert on it.
    """
    settings = load_settings()
    protocol = load_protocol(settings.protocol)
    policy_of(protocol)  # a clear error when the protocol has no asb: section
    today = clock_for(settings.clock_file)().date()
    with open_asb_register(settings) as register:
        reports = case_status(
            register=register,
            protocol=protocol,
            today=today,
            case=case,
            include_closed=include_closed or case is not None,
        )
    if as_json:
        echo_json({"today": today.isoformat(), "cases": [r.to_json() for r in reports]})
    else:
        if not reports:
            typer.echo(f"no {'such' if case else 'open'} ASB case review", err=True)
        for report in reports:
            _print(report)
    if any(r.overdue for r in reports):
        raise typer.Exit(1)


@app.command("sweep")
@handle_errors
def sweep_command(dry_run: DryRun = False, as_json: _JSON = False) -> None:
    """Publish threshold decisions that are due and escalate missed deadlines, now."""
    result = sweep_asb(load_settings(), dry_run=dry_run)
    verb = "would publish" if dry_run else "published"
    echo_sweep(
        result,
        as_json=as_json,
        line=lambda item: f"{verb} {item['kind']:26} case {item['case_ref']}",
    )


@app.command("report")
@handle_errors
def report_command(
    year: Annotated[int, typer.Option("--year", help="calendar year, e.g. 2026", min=2000)],
    as_json: _JSON = False,
) -> None:
    """The year's figures for the scrutiny panel, from the audit log.

    Applications, threshold decisions (met, not met), outcomes and appeals: each event counted
    once, however many bodies received it.
    """
    settings = load_settings()
    protocol = load_protocol(settings.protocol)
    policy_of(protocol)
    store = open_store(settings)
    try:
        figures = yearly_figures(store, protocol, year=year)
    finally:
        store.close()
    if as_json:
        echo_json(figures)
        return
    typer.echo(f"ASB Case Reviews {year} ({figures['protocol']})")
    for label, key in (
        ("applications", "applications"),
        ("threshold decisions", "threshold_decisions"),
        ("  threshold met", "thresholds_met"),
        ("  threshold not met", "thresholds_not_met"),
        ("outcomes", "outcomes"),
        ("appeals", "appeals"),
    ):
        typer.echo(f"  {label:22} {figures[key]}")
