"""`hub audit prune`: remove audit records past the protocol's audit retention.

The logic lives in ``hub.audit.retention`` (what may go) and ``AuditLog.prune`` (signed,
audited, hashes kept); this module reads the protocol and the legal holds, asks, and prints.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import typer

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog, PruneResult
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.retention import PrunePlan, plan_prune, subtract_duration
from hub.audit.store import AuditStore, open_store, sqlite_path
from hub.cli.common import echo_json, handle_errors, load_settings
from hub.errors import AuditError, ConfigError
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.state import open_case_keys

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `prune` to the `hub audit` group."""
    app.command("prune")(handle_errors(prune))


def prune(
    before: Annotated[
        str | None,
        typer.Option(
            "--before",
            metavar="DATE",
            help="prune records written before this date (YYYY-MM-DD or ISO 8601, UTC); "
            "default: now minus the protocol's audit_retention",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="why, for the audit record of the prune")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Prune audit records past the protocol's audit retention, keeping the log verifiable.

    Removes the oldest records (a prefix of the log) but keeps the Merkle subtree hashes
    over them, so later checkpoints and proofs still verify. Never removes a record of a
    case under legal hold, nor anything after one. Signed and audited.
    """
    settings = load_settings()
    now = datetime.now(UTC)
    cut_off, default_reason = _cut_off(settings, before, now)
    if reason is not None and not reason.strip():
        raise AuditError("prune --reason: expected text, got an empty value")
    with _audit_log(settings) as (log, store, held):
        plan = plan_prune(store, before=cut_off, held_cases=held)
        if not plan.count:
            _nothing(plan, as_json=as_json)
            return
        if not yes:
            typer.echo(plan.describe(), err=True)
            typer.confirm(
                f"prune {plan.count} audit records? they cannot be restored", abort=True, err=True
            )
        result = log.prune(plan, reason=(reason or default_reason).strip(), by=getpass.getuser())
    if as_json:
        echo_json(result.to_json())
    else:
        _print_result(result)


def _cut_off(settings: HubSettings, before: str | None, now: datetime) -> tuple[datetime, str]:
    """The cut-off and the default reason; refuses one inside the retention period."""
    protocol = load_protocol(settings.protocol).protocol
    retention = protocol.audit_retention
    limit = subtract_duration(now, retention) if retention else None
    if before is None:
        if limit is None:
            raise ConfigError(
                f"protocol {protocol.id}: expected an audit_retention (e.g. audit_retention: "
                f"P6Y under protocol: in {settings.protocol}) or --before DATE, got neither"
            )
        return limit, f"audit retention {retention} of protocol {protocol.id}"
    cut_off = _parse_time(before)
    if limit is not None and cut_off > limit:
        raise AuditError(
            f"prune --before: expected a date on or before {limit:%Y-%m-%d %H:%M:%SZ} "
            f"(protocol {protocol.id} keeps audit records for {retention}), got {before}"
        )
    if cut_off > now:
        raise AuditError(f"prune --before: expected a date in the past, got {before}")
    return cut_off, f"records before {cut_off:%Y-%m-%d} pruned on request"


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise AuditError(
            f"prune --before: expected a date (YYYY-MM-DD) or an ISO 8601 time, got {text!r}"
        ) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextlib.contextmanager
def _audit_log(
    settings: HubSettings,
) -> Iterator[tuple[AuditLog, AuditStore, set[str]]]:
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        raise ConfigError(
            f"no audit database at {path}: no hub has run with this HUB_DATA_DIR "
            f"({settings.data_dir})"
        )
    pseudonymiser = Pseudonymiser(load_pseudonym_key(settings))
    held = {h.case for h in open_case_keys(settings, pseudonymise=pseudonymiser.case).holds()}
    signer = log_signer(settings)
    with contextlib.closing(open_store(settings)) as store:
        yield AuditLog(store, signer=signer), store, held


def _nothing(plan: PrunePlan, *, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "pruned": 0,
                "from_index": plan.start,
                "to_index": plan.end,
                "before": plan.before.isoformat(),
                "stopped_by": plan.stop,
                "held_case": plan.held_case,
            }
        )
    else:
        typer.echo(plan.describe())


def _print_result(result: PruneResult) -> None:
    plan = result.plan
    typer.echo(
        f"pruned {result.deleted} audit records [{plan.start}, {plan.end}), written before "
        f"{plan.before:%Y-%m-%d %H:%M:%SZ}; their Merkle subtree hashes are kept"
    )
    if plan.stop == "legal hold":
        typer.echo(
            f"  stopped at record {plan.end}: case {plan.held_case} is under legal hold, so it "
            f"and every later record are kept"
        )
    typer.echo(f"  audit record {result.record.record_id} (decision pruned)")
    typer.echo("  checkpoint signed before pruning:")
    typer.echo("".join(f"    {line}\n" for line in result.checkpoint_before.splitlines()), nl=False)
    typer.echo("  checkpoint signed after the audit record:")
    typer.echo("".join(f"    {line}\n" for line in result.checkpoint_after.splitlines()), nl=False)
