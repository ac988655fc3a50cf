"""`hub audit reconcile`: every delivery on the broker has its audit record.

Reads every ``hub.out.*`` topic of the running hub's broker and matches each delivery with
the audit store's ``delivered`` records (``hub.audit.reconcile``). Exit code 1 when a
delivery has no audit record (or a record there names no delivery), so a scheduled job can
alert on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

import typer

from hub.agents.supervisor import read_state
from hub.audit.reconcile import Reconciliation, read_outbound, reconcile_with_store
from hub.audit.store import open_store, sqlite_path
from hub.cli.common import handle_errors, load_settings
from hub.errors import ConfigError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `reconcile` to the `hub audit` group."""
    app.command("reconcile")(handle_errors(reconcile))


def reconcile(
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0.0,
            help="seconds to let the audit sink store records still on hub.audit "
            "before calling a delivery unaudited",
        ),
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
) -> None:
    """Check every delivery on the broker's hub.out topics against the audit store.

    Prints deliveries read, audited, unaudited (each by event id and recipient) and
    duplicated (at-least-once redelivery: reported, not a failure). Exits 1 when any
    delivery has no audit record. Needs the broker: HUB_KAFKA_BOOTSTRAP, or the running
    hub's address in HUB_DATA_DIR.
    """
    settings = load_settings()
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        raise ConfigError(
            f"no audit database at {path}: no hub has run with this HUB_DATA_DIR "
            f"({settings.data_dir})"
        )
    bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap
    # the broker first: a delivery read is then either audited already or on its way
    outbound = asyncio.run(read_outbound(bootstrap, security=settings.kafka_security))
    with contextlib.closing(open_store(settings)) as store:
        result = reconcile_with_store(store, outbound, wait=wait)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        typer.echo(_text(result))
    if not result.ok:
        raise typer.Exit(1)


def _text(result: Reconciliation) -> str:
    lines = [
        f"topics read: {len(result.topics)} (hub.out.*), hub notices skipped: {result.notices}",
        f"deliveries read: {result.read} ({result.deliveries} distinct event and recipient)",
        f"audited: {result.audited}",
        f"unaudited: {len(result.unaudited)}",
        f"duplicated: {len(result.duplicated)} "
        f"({result.redelivered} extra copies: at-least-once redelivery, not a failure)",
    ]
    if result.unidentified:
        lines.append(f"unidentified records: {len(result.unidentified)}")
    if result.unaudited:
        lines += ["", "UNAUDITED: delivered with no audit record (EVENT RECIPIENT PUBLISHER AT)"]
        lines += [
            f"  {d.event_id}  {d.recipient}  {d.publisher or '-'}  {d.origin or '-'}"
            for d in result.unaudited
        ]
    if result.unidentified:
        lines += ["", "UNIDENTIFIED: records on a delivery topic that name no delivery"]
        lines += [f"  {u.origin}  {u.why}" for u in result.unidentified]
    if result.duplicated:
        lines += ["", "DUPLICATED (EVENT RECIPIENT COPIES)"]
        lines += [
            f"  {d.delivery.event_id}  {d.delivery.recipient}  {d.copies}"
            for d in result.duplicated
        ]
    lines += ["", "ok: every delivery has its audit record" if result.ok else "FAILED"]
    return "\n".join(lines)
