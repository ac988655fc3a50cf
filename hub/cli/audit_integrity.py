"""`hub audit verify|proof|consistency|checkpoint|log-key`: the tamper-evident log.

Proofs print hashes in base64 and checkpoints as C2SP signed notes, so a party can check
them with the RFC 9162 / C2SP tooling of their choice (see ``hub.audit.log``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog, VerifyReport
from hub.audit.store import AuditStore, open_store, sqlite_path
from hub.cli.common import echo_json, fail, handle_errors, load_settings
from hub.errors import ConfigError
from hub.models import AuditRecord

__all__ = ["register"]

_JSON = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


@contextlib.contextmanager
def _audit_log() -> Iterator[AuditLog]:
    """The log over the configured store, signed with this hub's log key."""
    with _audit_log_and_store() as (log, _):
        yield log


@contextlib.contextmanager
def _audit_log_and_store() -> Iterator[tuple[AuditLog, AuditStore]]:
    settings = load_settings()
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        raise ConfigError(
            f"no audit database at {path}: no hub has run with this HUB_DATA_DIR "
            f"({settings.data_dir})"
        )
    signer = log_signer(settings)
    with contextlib.closing(open_store(settings)) as store:
        yield AuditLog(store, signer=signer), store


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
    event: Annotated[
        str | None, typer.Option("--event", help="event id (or audit record id)")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            dir_okay=False,
            help="write the proofs of --event as a bundle a peer hub checks with --bundle",
        ),
    ] = None,
    bundle_file: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            exists=True,
            dir_okay=False,
            help="check a peer hub's bundle (its --export) with its pinned log key; needs --peer",
        ),
    ] = None,
    peer: Annotated[
        str | None,
        typer.Option(
            "--peer",
            metavar="PEER",
            help="prove with PEER's log: its --bundle, or the proofs it sent for --event",
        ),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Inclusion proofs (RFC 9162) of every audit record of an event, with the checkpoint.

    Across two partnerships' logs (federation): --export FILE writes them as a bundle for
    the peer; --peer PEER --bundle FILE checks a bundle from PEER, and --peer PEER --event ID
    the proofs PEER's hub sent for transfer ID; both with PEER's pinned log key, and show
    what this hub's own log holds for the same event.
    """
    if peer is not None:
        _peer_proof(peer, event=event, bundle_file=bundle_file, as_json=as_json)
        return
    if bundle_file is not None:
        raise ConfigError("--bundle: expected --peer PEER (whose pinned log key checks it)")
    if event is None:
        raise ConfigError("hub audit proof: expected --event ID (or --peer PEER)")
    if export is not None:
        _export(event, export)
        return
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


def _export(event: str, path: Path) -> None:
    from hub.federation.proofs import bundle, entries_for

    with _audit_log_and_store() as (log, store):
        entries = entries_for(log, store, event)
        document = bundle(log.origin, entries)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {len(entries)} proofs of event {event} ({log.origin}) to {path}")


def _peer_proof(peer: str, *, event: str | None, bundle_file: Path | None, as_json: bool) -> None:
    """Check proofs of PEER's log with its pinned key, and show this log's side."""
    from hub.federation.proofs import (
        ProofError,
        ProvenRecord,
        pinned_log_key,
        read_bundle,
        verify_entry,
    )
    from hub.policies.loader import load_protocol
    from hub.state import open_proof_register

    settings = load_settings()
    protocol = load_protocol(settings.protocol)
    if not protocol.is_peer(peer):
        peers = ", ".join(p.id for p in protocol.peers) or "none"
        raise ConfigError(f"--peer {peer}: expected a peer hub of the protocol (peers: {peers})")
    verifier = pinned_log_key(settings.keys_dir, peer)
    if bundle_file is not None:
        entries = read_bundle(bundle_file.read_text(encoding="utf-8"), source=str(bundle_file))
    elif event is not None:
        with open_proof_register(settings) as register:
            entries = register.entries(peer, event)
        if not entries:
            raise ConfigError(
                f"no proof from {peer} for event {event}: its hub sends one once its "
                f"checkpoint covers its record (seconds after the hand-over, over the link); "
                f"or ask its IG officer for `hub audit proof --event {event} --export FILE` "
                f"and check it with --bundle FILE"
            )
    else:
        raise ConfigError("--peer: expected --bundle FILE or --event ID")
    if not entries:  # a bundle emptied on the way proves nothing: never a silent success
        raise fail(f"{bundle_file}: expected at least one proof from {peer}, got none")
    proven: list[ProvenRecord] = []
    failures: list[str] = []
    for entry in entries:
        try:
            item = verify_entry(entry, verifier)
        except ProofError as exc:
            failures.append(str(exc))
            continue
        if event is not None and event not in (item.record.event_id, item.record.record_id):
            # a valid proof of another event does not prove this one
            failures.append(
                f"proof of record {item.record.record_id}: expected event {event}, got event "
                f"{item.record.event_id}"
            )
            continue
        proven.append(item)
    events = list(dict.fromkeys(p.record.event_id for p in proven))
    here: dict[str, list[AuditRecord]] = {}
    path = sqlite_path(settings)
    if events and (path is None or path.exists()):
        with contextlib.closing(open_store(settings)) as store:
            here = {e: list(store.query(event_id=e)) for e in events}
    if as_json:
        echo_json(
            {
                "peer": peer,
                "log_key": verifier.name,
                "proven": [
                    {
                        "record": p.record.model_dump(mode="json"),
                        "leaf_index": p.leaf_index,
                        "tree_size": p.checkpoint.size,
                        "origin": p.checkpoint.origin,
                    }
                    for p in proven
                ],
                "here": {
                    e: [r.model_dump(mode="json") for r in records] for e, records in here.items()
                },
                "failed": failures,
            }
        )
    else:
        for item in proven:
            typer.echo(f"{peer}'s log holds {item.describe()}: verified")
        for event_id, records in here.items():
            for record in records:
                to = f" to {record.recipient}" if record.recipient else ""
                typer.echo(
                    f"this log holds record {record.record_id}: event {event_id} "
                    f"{record.decision.value}{to} at {record.time.isoformat()}"
                )
    if failures:
        raise fail(
            f"{len(failures)} of {len(entries)} proofs from {peer} do not verify: {failures[0]}"
        )


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
