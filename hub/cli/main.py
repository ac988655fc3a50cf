"""The ``hub`` command: one typer app, one sub-app per command group."""

from __future__ import annotations

import os
import sys

import typer

from hub.cli import (
    acl,
    audit,
    console,
    federation,
    ingress,
    keys,
    policy,
    runtime,
    state,
    webhooks,
)
from hub.errors import HubError
from hub.log import configure_logging
from hub.private import enter_private
from hub.processes import default_registry

app = typer.Typer(
    name="hub",
    help="Policy-routed, audited information sharing for Community Safety Partnerships.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup() -> None:
    """Logs go to stderr from the first line, so stdout carries only a command's output."""
    configure_logging(os.environ.get("HUB_LOG_LEVEL", "INFO"))


app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
app.add_typer(keys.hold_app, name="holds")  # `hub keys hold`: a hidden alias that says so
for _group in default_registry().cli():  # each process's commands (hub.processes)
    app.add_typer(_group.app, name=_group.name)
app.add_typer(ingress.app, name="ingress")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(console.app, name="console")
app.add_typer(federation.app, name="federation")
app.add_typer(state.app, name="state")
runtime.register(app)
app.command("acl")(acl.acl_command)


def main() -> None:
    """Console-script entry point: private files first (``hub.private``), then the command."""
    try:
        enter_private()
    except HubError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    app()
