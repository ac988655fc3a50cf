"""`hub marac status|sweep`: what a MARAC coordinator needs to know, and the hub's follow-ups.

``status`` answers "is the flag on every department's system?": per flag, which departments
acknowledged it, which are overdue (past the protocol's ``marac.ack_limit``) and which were
escalated. ``sweep`` does now what the running hub does every ``HUB_WORKFLOW_INTERVAL``
seconds: prompt reviews that are due, expire flags not reconfirmed in time (unless under a
legal hold), escalate overdue acknowledgements and report repeat referrals.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.common import DryRun, echo_json, echo_sweep, handle_errors, load_settings
from hub.state import open_flag_register
from hub.workflows.context import workflow_context
from hub.workflows.marac import FlagReport, flag_status
from hub.workflows.sweep import sweep_once

__all__ = ["app"]

app = typer.Typer(
    help="MARAC flags: acknowledgement status, reviews, expiries and escalations.",
    no_args_is_help=True,
)
_JSON = Annotated[bool, typer.Option("--json", help="one JSON document")]


def _print(report: FlagReport) -> None:
    flag = report.flag
    review = f"review {flag.review_date}" if flag.review_date else "no review date"
    due = "  REVIEW DUE" if report.review_due else ""
    typer.echo(f"{flag.case_ref}  {flag.status}  {review}  expires {report.expires_on}{due}")
    latest: dict[str, Any] = {}
    for ack in report.acks:  # newest delivery per department decides its line
        if ack.party not in latest or ack.delivered_at >= latest[ack.party].delivered_at:
            latest[ack.party] = ack
    if not latest:
        typer.echo("  (no department has been sent this flag)")
    for party, ack in sorted(latest.items()):
        if ack.acknowledged_at is not None:
            state = f"acknowledged {ack.acknowledged_at:%Y-%m-%d %H:%M}"
        elif ack.overdue:
            state = f"OVERDUE since {ack.due_by:%Y-%m-%d %H:%M}"
            if ack.escalated:  # an alert named this very delivery, not another of the party's
                state += " (escalated to the coordinator)"
        else:
            state = f"awaiting acknowledgement until {ack.due_by:%Y-%m-%d %H:%M}"
        typer.echo(f"  {party:40} {ack.event_type.rsplit('.', 2)[-2]:9} {state}")
    for party, at in report.views:  # NHS CP-IS access notices
        typer.echo(f"  viewed by {party} at {at:%Y-%m-%d %H:%M}")
    for peer, event_id, state in report.transfers:  # to another partnership (issue 20)
        said = "ownership taken by the peer" if state == "owned" else state
        typer.echo(f"  transferred to {peer} (event {event_id}): {said}")


@app.command("status")
@handle_errors
def status_command(
    case: Annotated[str | None, typer.Option("--case", help="one case reference")] = None,
    include_closed: Annotated[
        bool, typer.Option("--all", help="include withdrawn and expired flags")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Per flag: which departments acknowledged it, which are overdue, which were escalated.

    Exit status 1 when any department is overdue, so a scheduled job can alert on it.
    """
    settings = load_settings()
    with workflow_context(settings) as ctx, open_flag_register(settings) as register:
        reports = flag_status(
            register=register,
            store=ctx.store,
            protocol=ctx.protocol,
            pseudonymiser=ctx.pseudonymiser,
            now=ctx.now,
            case=case,
            include_closed=include_closed or case is not None,
        )
    now = ctx.now
    if as_json:
        echo_json({"now": now.isoformat(), "flags": [r.to_json() for r in reports]})
    else:
        if not reports:
            typer.echo(f"no {'such' if case else 'active'} MARAC flag", err=True)
        for report in reports:
            _print(report)
    if any(r.overdue for r in reports):
        raise typer.Exit(1)


@app.command("sweep")
@handle_errors
def sweep_command(dry_run: DryRun = False, as_json: _JSON = False) -> None:
    """Prompt due reviews, expire lapsed flags, escalate overdue acknowledgements, now."""
    result = sweep_once(load_settings(), dry_run=dry_run)
    verb = "would publish" if dry_run else "published"
    echo_sweep(
        result,
        as_json=as_json,
        line=lambda item: (
            f"{verb} {item['kind']:16} case {item['case_ref']}  ({item['event_type']})"
        ),
        notes=[f"kept by a legal hold: case {case} (not expired)" for case in result["held"]],
    )
