"""`hub console` and `hub console user add|list|remove`: the web console and its accounts.

Accounts live in ``HUB_CONSOLE_ACCOUNTS`` (default ``<data_dir>/console-accounts.toml``)
with Argon2id password hashes; a password is prompted for (hidden, twice) or read from
stdin with ``--password-stdin``, never taken as an argument (it would sit in shell history
and ``ps``).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hub.cli.common import echo_json, fail, handle_errors, load_settings
from hub.log import configure_logging
from hub.policies.loader import load_protocol
from hub.web.accounts import Accounts, Role

__all__ = ["app"]

app = typer.Typer(
    help="Web console for IG officers and MARAC coordinators: audit, reports, MARAC board.",
    invoke_without_command=True,
)
user_app = typer.Typer(help="Console accounts: name, role, party, password.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@app.callback()
@handle_errors
def console_command(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option(help="port (default HUB_CONSOLE_PORT; 0 = any free port)")
    ] = None,
) -> None:
    """Serve the console on HUB_CONSOLE_HOST until Ctrl-C; prints `console ready url=...`."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    configure_logging(settings.log_level)
    from hub.web.server import console_server  # the web app: only when serving

    server = console_server(settings, port=port)
    typer.echo(f"console ready url={server.url}")
    if not Accounts(settings.console_accounts_path).load():
        typer.echo(
            f"warning: no accounts in {settings.console_accounts_path}: add one with "
            "`hub console user add`",
            err=True,
        )
    sys.stdout.flush()
    server.run()


@user_app.command("add")
@handle_errors
def user_add(
    name: Annotated[str, typer.Option("--name", help="sign-in name")],
    role: Annotated[Role, typer.Option("--role", help="what the account may see")],
    party: Annotated[
        str | None,
        typer.Option("--party", help="the person's party (required for agency-user)"),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Add (or replace) an account; the password is hashed with Argon2id."""
    settings = load_settings()
    if party is not None and load_protocol(settings.protocol).party(party) is None:
        raise fail(f"--party: expected a party of the protocol, got {party!r}")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    account = Accounts(settings.console_accounts_path).add(
        name=name, role=role, party=party, password=password
    )
    where = f" for {account.party}" if account.party else ""
    typer.echo(f"account {account.name}: {account.role.value}{where}")


@user_app.command("list")
@handle_errors
def user_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """List accounts (names, roles, parties; never hashes)."""
    settings = load_settings()
    for account in Accounts(settings.console_accounts_path).load():
        if as_json:
            echo_json({"name": account.name, "role": account.role.value, "party": account.party})
        else:
            typer.echo(f"{account.name:24} {account.role.value:18} {account.party or '-'}")


@user_app.command("remove")
@handle_errors
def user_remove(name: Annotated[str, typer.Option("--name", help="sign-in name")]) -> None:
    """Remove an account (its sessions end at their next request)."""
    if not Accounts(load_settings().console_accounts_path).remove(name):
        raise fail(f"--name: no account {name!r}")
    typer.echo(f"removed account {name}")
