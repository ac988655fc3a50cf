"""`hub audit verify|proof|consistency|checkpoint|log-key`: the tamper-evident log.

Proofs print hashes in base64 and checkpoints as C2SP signed notes, so a party can check
them with the RFC 9162 / C2SP tooling of their choice (see ``hub.audit.log``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog, VerifyReport
from hub.audit.store import open_store, sqlite_path
from hub.cli.common import echo_json, fail, handle_errors, load_settings
from hub.errors import ConfigError

__all__ = ["register"]

_JSON = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


@contextlib.contextmanager
def _audit_log() -> Iterator[AuditLog]:
    """The log over the configured store, signed with this hub's log key."""
    settings = load_settings()
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        raise ConfigError(
            f"no audit database at {path}: no hub has run with this HUB_DATA_DIR "
            f"({settings.data_dir})"
        )
    signer = log_signer(settings)
    with contextlib.closing(open_store(settings)) as store:
        yield AuditLog(store, signer=signer)


@handle_errors
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="also check this checkpoint note (a copy a party kept); repeatable",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Recompute the Merkle tree from the store and check every record and checkpoint."""
    notes = [p.read_text(encoding="utf-8") for p in checkpoint or ()]
    with _audit_log() as log:
        report = log.verify(checkpoints=notes)
    if as_json:
        echo_json(report.to_json())
    else:
        _print_report(report)
    first = report.first
    if first is not None:
        where = "" if first.index is None else f" at index {first.index}"
        raise fail(f"audit log does not verify: {first.message}{where}")


def _print_report(report: VerifyReport) -> None:
    root = report.to_json()["root_hash"]
    typer.echo(
        f"{report.size} records, root {root}, {report.checkpoints_checked} checkpoints checked"
    )
    if report.unsigned:
        typer.echo(
            f"  {report.unsigned} records not yet under a signed checkpoint (the newest "
            f"{report.unsigned}): a change to them is found once the hub signs the next one"
        )
    else:
        typer.echo("  every record is under a signed checkpoint")
    if report.pruned:
        pruned_at = f" on {report.pruned_at:%Y-%m-%d}" if report.pruned_at else ""
        before = f"{report.pruned_before:%Y-%m-%d}" if report.pruned_before else "?"
        typer.echo(
            f"  {report.pruned} records (leaves 0..{report.pruned - 1}, written before {before}) "
            f"were pruned under audit retention{pruned_at}; verified from their kept subtree "
            f"hashes, and checkpoints below size {report.pruned} through the kept proofs"
        )
    if report.checkpoints_unchecked:
        typer.echo(
            f"  {report.checkpoints_unchecked} checkpoint copies below the pruned size "
            f"{report.pruned} match no kept proof and could not be rechecked against the log",
            err=True,
        )
    for finding in report.findings:
        where = "" if finding.index is None else f"index {finding.index}: "
        typer.echo(f"  {finding.kind}: {where}{finding.message}", err=True)


@handle_errors
def proof(
    event: Annotated[str, typer.Option("--event", help="event id (or audit record id)")],
    as_json: _JSON = False,
) -> None:
    """Inclusion proofs (RFC 9162) of every audit record of an event, with the checkpoint."""
    with _audit_log() as log:
        proofs = log.inclusion_proofs(event)
    for item in proofs:
        data = item.to_json()
        if as_json:
            echo_json(data)
            continue
        typer.echo(f"record {item.record_id}: leaf {item.leaf_index} of {item.tree_size}")
        typer.echo(f"  leaf hash {data['leaf_hash']}")
        for position, node in enumerate(data["proof"]):
            typer.echo(f"  proof[{position}] {node}")
        typer.echo(item.checkpoint)


@handle_errors
def consistency(
    old: Annotated[int, typer.Option("--from", min=1, help="older tree size")],
    new: Annotated[int, typer.Option("--to", min=1, help="newer tree size")],
    as_json: _JSON = False,
) -> None:
    """Consistency proof (RFC 9162) that the tree of size --to extends that of --from."""
    with _audit_log() as log:
        result = log.consistency_proof(old, new)
    data = result.to_json()
    if as_json:
        echo_json(data)
        return
    typer.echo(f"from {old} root {data['old_root']}")
    typer.echo(f"to {new} root {data['new_root']}")
    for position, node in enumerate(data["proof"]):
        typer.echo(f"  proof[{position}] {node}")


@handle_errors
def checkpoint() -> None:
    """Sign a checkpoint of the log as it is now, keep it and print it."""
    with _audit_log() as log:
        typer.echo(log.checkpoint(), nl=False)


@handle_errors
def log_key() -> None:
    """Print the verifier key parties use to check checkpoints (<name>+<id>+<key>)."""
    typer.echo(log_signer(load_settings()).verifier_key)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `hub audit` group."""
    app.command("verify")(verify)
    app.command("proof")(proof)
    app.command("consistency")(consistency)
    app.command("checkpoint")(checkpoint)
    app.command("log-key")(log_key)
