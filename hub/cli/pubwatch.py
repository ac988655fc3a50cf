"""`hub pubwatch status|sweep`: who holds each ban, and the expiry at its end.

``status`` answers "who still holds this ban, and were they told it ended?": per ban, its
period, every party that holds it (the publisher and each recipient, from the audit log) and
which were sent its expiry. ``sweep`` does now what the running hub does every
``HUB_WORKFLOW_INTERVAL`` seconds: publish the expiry of every ban that has ended.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.common import DryRun, echo_json, echo_sweep, handle_errors, load_settings
from hub.workflows.pubwatch import BanReport, open_status, sweep_bans

__all__ = ["app"]

app = typer.Typer(
    help="Pub Watch and retail bans: who holds each, and expiries at ban end.",
    no_args_is_help=True,
)
_JSON = Annotated[bool, typer.Option("--json", help="one JSON document")]


def _print(report: BanReport) -> None:
    ban = report.ban
    ended = "  ENDED, expiry not yet sent" if report.ended and ban.status == "active" else ""
    typer.echo(
        f"{ban.ban_ref}  {ban.scheme}  {ban.incident_type}  {ban.status}  "
        f"{ban.ban_start} to {ban.ban_end}{ended}"
    )
    for party in report.holders:
        told = "  told it ended" if party in report.told_expired else ""
        typer.echo(f"  {party}{told}")


@app.command("status")
@handle_errors
def status_command(
    ban: Annotated[str | None, typer.Option("--ban", help="one ban reference")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="include expired bans")] = False,
    as_json: _JSON = False,
) -> None:
    """Per ban: its period, who holds it, and who was told it ended.

    Exit status 1 when a ban has ended but its expiry was not sent yet.
    """
    now, reports = open_status(load_settings(), ban=ban, include_closed=include_closed)
    if as_json:
        echo_json({"now": now.isoformat(), "bans": [r.to_json() for r in reports]})
    else:
        if not reports:
            typer.echo(f"no {'such' if ban else 'active'} ban", err=True)
        for report in reports:
            _print(report)
    if any(r.ended and r.ban.status == "active" for r in reports):
        raise typer.Exit(1)


@app.command("sweep")
@handle_errors
def sweep_command(dry_run: DryRun = False, as_json: _JSON = False) -> None:
    """Publish the expiry of every ban that has ended, now."""
    verb = "would publish" if dry_run else "published"
    echo_sweep(
        sweep_bans(load_settings(), dry_run=dry_run),
        as_json=as_json,
        line=lambda item: f"{verb} expiry of ban {item['ban_ref']}",
    )
