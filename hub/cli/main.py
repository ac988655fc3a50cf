"""The ``hub`` command: one typer app, one sub-app per command group."""

from __future__ import annotations

import typer

from hub.cli import audit, keys, policy, runtime

app = typer.Typer(
    name="hub",
    help="Policy-routed, audited information sharing for Community Safety Partnerships.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(keys.app, name="keys")
runtime.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
