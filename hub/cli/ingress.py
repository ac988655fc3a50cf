"""`hub ingress serve` and `hub ingress token add|list|revoke`: the HTTP ingress.

Tokens live hashed in ``<data_dir>/ingress-tokens.json`` (0600); the secret is printed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import echo_json, handle_errors, load_settings, require_party
from hub.errors import ConfigError, UnknownKeyError
from hub.ingress import TokenStore, TrustedProxy, build_app, serve
from hub.ingress.server import check_transport
from hub.ingress.tokens import IngressToken
from hub.keys.file_store import FileKeyStore
from hub.policies.loader import load_protocol

__all__ = ["app"]

app = typer.Typer(
    help="HTTP ingress: POST CloudEvents as a party, for systems that cannot speak Kafka.",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="Per-party ingress tokens (stored as SHA-256 hashes).", no_args_is_help=True
)
app.add_typer(token_app, name="token")

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON, one object per line.")]


@app.command("serve")
@handle_errors
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0 = any free port)")] = 8088,
    tls_cert: Annotated[
        Path | None, typer.Option(help="serve HTTPS with this certificate (PEM)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="private key of --tls-cert (PEM)")] = None,
    trusted_party_header: Annotated[
        str | None,
        typer.Option(
            help="mTLS at a reverse proxy: take the party from this header, only from "
            "--trusted-proxy addresses"
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(help="address of the proxy allowed to set the header; repeatable"),
    ] = None,
    allow_plain_http: Annotated[
        bool, typer.Option(help="listen without TLS on a non-loopback address")
    ] = False,
) -> None:
    """Serve POST /v1/events (and /openapi.json) until Ctrl-C; prints `ingress ready url=...`."""
    check_transport(host, tls_cert=tls_cert, tls_key=tls_key, allow_plain_http=allow_plain_http)
    settings = load_settings()
    proxy: TrustedProxy | None = None
    if trusted_party_header is not None:
        if not trusted_proxy:
            raise ConfigError(
                "--trusted-party-header: expected at least one --trusted-proxy address "
                "(the header is trusted from the proxy only)"
            )
        proxy = TrustedProxy(header=trusted_party_header, addresses=frozenset(trusted_proxy))
    application = build_app(settings, trusted_proxy=proxy)
    serve(
        application,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allow_plain_http=allow_plain_http,
        body_timeout=settings.ingress_body_timeout,
        on_ready=lambda url: typer.echo(f"ingress ready url={url}"),
    )


def _line(token: IngressToken) -> str:
    state = "active" if token.active else f"revoked={token.revoked:%Y-%m-%dT%H:%M:%SZ}"
    return (
        f"{token.token_id}  {token.party:<36} {state:<28} "
        f"created={token.created:%Y-%m-%dT%H:%M:%SZ}  {token.label or ''}"
    ).rstrip()


@token_app.command("add")
@handle_errors
def add_command(
    party: Annotated[str, typer.Option("--party", help="the party the token acts for")],
    label: Annotated[str | None, typer.Option(help="a note: which system holds it")] = None,
    as_json: _JSON = False,
) -> None:
    """Make a token for PARTY and print it once (only its hash is kept)."""
    settings = load_settings()
    require_party(load_protocol(settings.protocol), party, option="--party")
    try:
        FileKeyStore(settings.keys_dir).active(party)
    except UnknownKeyError:
        typer.echo(
            f"warning: no active signing key for {party} in {settings.keys_dir}: the ingress "
            f"refuses its events until `hub keys init --party {party}` (or `hub up`) makes one",
            err=True,
        )
    secret, record = TokenStore.in_data_dir(settings.data_dir).add(party, label=label)
    if as_json:
        echo_json({**record.model_dump(mode="json", exclude={"sha256"}), "token": secret})
        return
    typer.echo(secret)
    typer.echo(
        f"token {record.token_id} for {party}: shown once, store it in the agency system's "
        "secret store; revoke with `hub ingress token revoke " + record.token_id + "`",
        err=True,
    )


@token_app.command("list")
@handle_errors
def list_command(as_json: _JSON = False) -> None:
    """List tokens: id, party, state, when made (never the secret)."""
    settings = load_settings()
    for token in TokenStore.in_data_dir(settings.data_dir).tokens():
        if as_json:
            echo_json(token.model_dump(mode="json", exclude={"sha256"}))
        else:
            typer.echo(_line(token))


@token_app.command("revoke")
@handle_errors
def revoke_command(
    token_id: Annotated[str, typer.Argument(help="the token id from `hub ingress token list`")],
    as_json: _JSON = False,
) -> None:
    """Revoke a token: a running ingress refuses it from its next request."""
    settings = load_settings()
    token = TokenStore.in_data_dir(settings.data_dir).revoke(token_id)
    if as_json:
        echo_json(token.model_dump(mode="json", exclude={"sha256"}))
    else:
        typer.echo(_line(token))
