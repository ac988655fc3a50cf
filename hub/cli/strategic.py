"""`hub strategic status|export|release|sweep`: s17A submissions and the Strategic Assessment.

``status`` answers "who has met the s17A duty for each period, and who is late" (each
period is due by the end of the next quarter); ``export`` writes one period's suppressed
dataset as CSV (its SHA-256 is the release's digest) and Parquet; ``release`` publishes it to
the analysts now; ``sweep`` does what the running hub does every ``HUB_WORKFLOW_INTERVAL``:
alert late submitters, release each period once it is due.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import DryRun, echo_json, echo_sweep, handle_errors, load_settings
from hub.clock import clock_for
from hub.policies.loader import load_protocol
from hub.strategic.export import export_dataset
from hub.strategic.periods import Quarter
from hub.strategic.status import submitter_states, tracked_periods
from hub.strategic.sweep import (
    build_release,
    open_register,
    policy_of,
    release_period,
    sweep_strategic,
)

__all__ = ["app"]

app = typer.Typer(
    help="s17A depersonalised data: who submitted, who is late, the suppressed dataset.",
    no_args_is_help=True,
)
_JSON = Annotated[bool, typer.Option("--json", help="one JSON document")]
_PERIOD = Annotated[str, typer.Option("--period", help="an information period, e.g. 2026Q3")]


@app.command("status")
@handle_errors
def status_command(
    period: Annotated[
        str | None, typer.Option("--period", help="one period (default: every tracked one)")
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Per period and responsible authority: submitted, due soon, or late (and releases).

    Exit status 1 when any submitter is late, so a scheduled job can alert on it.
    """
    settings = load_settings()
    policy = policy_of(load_protocol(settings.protocol))
    now = clock_for(settings.clock_file)()
    periods = [Quarter.parse(period)] if period else tracked_periods(policy, now.date())
    with open_register(settings) as register:
        states = submitter_states(policy, register.submissions(), today=now.date(), periods=periods)
        releases = [r for r in register.releases() if period is None or r.period == str(periods[0])]
    if as_json:
        echo_json(
            {
                "now": now.isoformat(),
                "submitters": [s.to_json() for s in states],
                "releases": [
                    {
                        "release_id": r.release_id,
                        "period": r.period,
                        "sha256": r.sha256,
                        "released_at": r.released_at,
                        "recipients": list(r.recipients),
                    }
                    for r in releases
                ],
            }
        )
    else:
        if not states:
            typer.echo(f"no period tracked yet (the first is {policy.first_period})", err=True)
        shown = None
        for state in states:
            if state.period != shown:
                shown = state.period
                typer.echo(f"{state.period}  due by {state.due_on}")
            words = {
                "complete": "submitted",
                "complete_late": "submitted (late)",
                "open": "open",
                "due": "DUE SOON",
                "late": "LATE",
            }[state.state]
            missing = f"  missing {', '.join(state.missing)}" if state.missing else ""
            typer.echo(f"  {state.submitter:36} {words}{missing}")
        for release in releases:
            typer.echo(
                f"released {release.period} as {release.release_id}  sha256 {release.sha256}"
                f"  to {', '.join(release.recipients) or '(routing)'}"
            )
    if any(s.state == "late" for s in states):
        raise typer.Exit(1)


@app.command("export")
@handle_errors
def export_command(
    period: _PERIOD,
    out: Annotated[
        Path, typer.Option("--out", help="directory for s17a-<period>.csv and .parquet")
    ] = Path(),
    csv_only: Annotated[
        bool, typer.Option("--csv-only", help="CSV only (no [strategic] extra needed)")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="build from the submissions kept now, even if already released"
        ),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Write one period's suppressed dataset: CSV (its SHA-256 is the release's) and Parquet.

    A released period is written as it was released (its latest release), so the files match
    what the analysts hold; one not released yet is built from the submissions kept now.
    """
    settings = load_settings()
    quarter = str(Quarter.parse(period))
    with open_register(settings) as register:
        releases = register.releases(quarter)
        released = None if rebuild else register.released().get(quarter)
    release_id = releases[-1].release_id if released is not None and releases else None
    dataset = released if released is not None else build_release(settings, quarter)
    files = export_dataset(dataset, out, parquet=not csv_only)
    hidden = sum(c.count is None for c in dataset.cells)
    if as_json:
        echo_json(
            {
                "period": dataset.period,
                "release_id": release_id,
                "sha256": dataset.sha256,
                "files": {kind: str(path) for kind, path in files.items()},
                "cells": len(dataset.cells),
                "suppressed": hidden,
                "missing": list(dataset.missing),
            }
        )
        return
    for path in files.values():
        typer.echo(f"wrote {path}")
    typer.echo(
        f"{dataset.period}: {len(dataset.cells)} cells, {hidden} suppressed (threshold "
        f"{dataset.threshold}); sha256 {dataset.sha256}"
    )
    if release_id:
        typer.echo(f"as released in {release_id}")
    elif releases:
        typer.echo("rebuilt from the submissions kept now: not what was released")
    else:
        typer.echo("not released yet: built from the submissions kept now")
    if dataset.missing:
        typer.echo(f"not yet submitted: {', '.join(dataset.missing)}")


@app.command("release")
@handle_errors
def release_command(
    period: _PERIOD,
    supersede: Annotated[
        bool,
        typer.Option(
            "--supersede",
            help="release a period again with changed figures (beware differencing)",
        ),
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Publish one period's suppressed dataset to the analysts now (audited with its digest)."""
    result = release_period(load_settings(), period, supersede=supersede)
    if as_json:
        echo_json(result)
        return
    typer.echo(
        f"released {result['period']} as {result['release_id']} (event {result['event_id']}): "
        f"{result['cells']} cells, {result['suppressed']} suppressed; sha256 {result['sha256']}"
    )


@app.command("sweep")
@handle_errors
def sweep_command(dry_run: DryRun = False, as_json: _JSON = False) -> None:
    """Alert late submitters and release each period once due, now."""
    result = sweep_strategic(load_settings(), dry_run=dry_run)
    verb = "would publish" if dry_run else "published"
    echo_sweep(
        result,
        as_json=as_json,
        line=lambda item: (
            f"{verb} {item['kind']:16} {item['period']}  {item.get('submitter', 'dataset')}"
        ),
    )
