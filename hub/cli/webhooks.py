"""`hub webhooks add|list|remove|run`: webhook delivery for parties without Kafka consumers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from hub.agents.supervisor import read_state
from hub.cli.common import echo_json, handle_errors, load_settings, require_party
from hub.errors import ConfigError
from hub.policies.loader import load_protocol
from hub.webhooks.config import WebhookConfig

app = typer.Typer(help="Webhook delivery (signed POSTs) for parties without a Kafka consumer.")


@app.command("add")
@handle_errors
def add(
    party: Annotated[str, typer.Option("--party", help="the receiving party")],
    url: Annotated[str, typer.Option("--url", help="the party's HTTPS endpoint")],
) -> None:
    """Set a party's endpoint with a new signing secret, printed once (give it to the party)."""
    settings = load_settings()
    require_party(load_protocol(settings.protocol), party, option="--party")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"--url: expected an http(s) URL, got {url!r}")
    secret = WebhookConfig(settings.webhooks_path).add(party, url)
    typer.echo(secret)
    typer.echo(
        f"webhook for {party} -> {url}; the secret above is shown only now "
        f"(restart `hub up`, or run `hub webhooks run`)",
        err=True,
    )


@app.command("list")
@handle_errors
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Configured parties and endpoints (never the secrets)."""
    endpoints = WebhookConfig(load_settings().webhooks_path).endpoints()
    rows = [{"party": p, "url": e.url} for p, e in sorted(endpoints.items())]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['party']:42} {row['url']}")


@app.command("remove")
@handle_errors
def remove(party: Annotated[str, typer.Option("--party")]) -> None:
    """Stop webhook delivery to a party (its secret is forgotten)."""
    if not WebhookConfig(load_settings().webhooks_path).remove(party):
        raise ConfigError(f"--party {party}: has no webhook")


@app.command("run")
@handle_errors
def run(
    party: Annotated[list[str] | None, typer.Option("--party", help="only these parties")] = None,
) -> None:
    """Run the dispatchers in the foreground (what `hub up` starts when webhooks exist)."""
    settings = load_settings()
    bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap
    with contextlib.suppress(KeyboardInterrupt):
        from hub.webhooks.dispatcher import run_dispatchers  # aiohttp: only when run

        asyncio.run(run_dispatchers(settings, bootstrap=bootstrap, parties=party or None))
