"""``hub state``: where the state router workers share lives (``hub.state``)."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.common import echo_json, handle_errors, load_settings

__all__ = ["app"]

app = typer.Typer(
    help="Shared state (seen ids, registers, case keys, holds): copy it into PostgreSQL.",
    no_args_is_help=True,
)


@app.command("migrate")
@handle_errors
def migrate_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per table")] = False,
) -> None:
    """Copy the data dir's SQLite state into HUB_STATE_URL's PostgreSQL database.

    Run it once, with the hub stopped, before starting workers with HUB_STATE_URL. Rows
    already there are kept, so it can be run again. The SQLite files are left as they were:
    delete them (and their backups) once the hub runs on PostgreSQL.
    """
    from hub.state.migrate import migrate  # the PostgreSQL driver only when asked

    settings = load_settings()
    done = migrate(settings)
    for table, counts in done.items():
        if as_json:
            echo_json({"table": table, **counts})
        else:
            typer.echo(f"{table:24} {counts['copied']:>8} copied of {counts['rows']}")
