"""`hub keys ...` (party keys, shredding, expiry) and `hub holds ...` (legal holds).

Keys live in ``<data_dir>/keys`` (``FileKeyStore``, the development store). Settings are
read when a command runs, never at import; every ``HubError`` becomes one actionable line
through ``handle_errors``.

Legal holds are kept by case pseudonym only (``hub.keys.cases``). ``hub holds list`` shows
each held case's reference where the hub already keeps it in clear, in its workflow
registers (the MARAC flag register, the ban register, ``workflows.sqlite3``): the reader
it shows them to is whoever can run it against this data dir, the hub's own account (the
data dir is 0700, ``hub.private``), who can read those registers anyway. Nothing new about
which cases exist is written for it.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.audit.actions import audit_case_action
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store, sqlite_path
from hub.cli.common import echo_json, handle_errors, load_settings
from hub.errors import ConfigError, LegalHoldError, UnknownPartyError
from hub.federation.proofs import export_log_key, import_log_key
from hub.keys.cases import CaseKeys
from hub.keys.expiry import expire_cases
from hub.keys.file_store import DIRECTORY_FORMAT, FileKeyStore
from hub.keys.model import HUB_PARTY, KeySuite, PartyKeys
from hub.keys.peers import PeerPins, parse_export
from hub.keys.store import add_missing_suites
from hub.models import AuditDecision
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.state import has_state, open_ban_register, open_case_keys, open_flag_register

__all__ = ["app", "hold_app"]

app = typer.Typer(
    help="Manage party keys: create, list, rotate, revoke, shred.",
    no_args_is_help=True,
)
hold_app = typer.Typer(
    help="Legal holds: a held case is not shredded, expired or pruned until it is lifted. "
    "For a Domestic Homicide Review, say; placing and lifting a hold are audited.",
    no_args_is_help=True,
)


def _moved() -> None:
    typer.echo("warning: `hub keys hold` is now `hub holds` (same commands)", err=True)


#: the old place of `hub holds`, hidden: it still works, and says where the commands went
_moved_hold_app = typer.Typer(hidden=True, no_args_is_help=True, callback=_moved)
app.add_typer(_moved_hold_app, name="hold", hidden=True)

_JSON = Annotated[bool, typer.Option("--json", help="Print JSON, one object per line.")]
_PARTIES = Annotated[
    list[str] | None,
    typer.Option("--party", metavar="PARTY", help="A party id; repeat for several."),
]
_CASE = Annotated[str, typer.Option("--case", metavar="REF", help="The case reference.")]


def _store(settings: HubSettings) -> FileKeyStore:
    return FileKeyStore(settings.keys_dir)


def _cases(settings: HubSettings) -> CaseKeys:
    pseudonymiser = Pseudonymiser(load_pseudonym_key(settings))
    return open_case_keys(settings, pseudonymise=pseudonymiser.case)


def _protocol_keying(settings: HubSettings) -> tuple[list[str], list[KeySuite]]:
    """Every party of the configured protocol then the hub, and every suite it uses.

    The first suite is the protocol's default (each party's primary key); the others come
    from ``crypto.event_types``.
    """
    protocol = load_protocol(settings.protocol)
    local = [p for p in protocol.party_ids if not protocol.is_peer(p)]  # peers: `import --peer`
    return [*local, HUB_PARTY], [KeySuite(s) for s in protocol.crypto.suites]


def _line(record: PartyKeys) -> str:
    encryption = " ".join(f"enc={k.key_id}" for k in record.encryption_keys)
    return (
        f"{record.party:<28} {record.status.value:<8} {record.suite.value:<16} "
        f"sign={record.signing_key_id} {encryption} "
        f"created={record.created:%Y-%m-%dT%H:%M:%SZ}"
    )


@app.command("init")
@handle_errors
def init_command(
    parties: _PARTIES = None,
    suite: Annotated[
        KeySuite | None,
        typer.Option("--suite", help="HPKE suite for new keys (default: the protocol's)."),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """Create keys for every party of the protocol (and the hub) that has none.

    Every party gets an encryption key for each suite the protocol uses. Idempotent:
    parties that have keys are left alone (use `rotate`), unless their active keys lack a
    suite the protocol now uses: they are rotated to keys that have it.
    """
    settings = load_settings()
    known, protocol_suites = _protocol_keying(settings)
    suite = suite or protocol_suites[0]
    extra = [s for s in protocol_suites if s is not suite]
    wanted = parties or known
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise UnknownPartyError(
            f"party {', '.join(unknown)}: expected a party of {settings.protocol} or "
            f"{HUB_PARTY!r}, got an undeclared id"
        )
    store = _store(settings)
    targets = list(dict.fromkeys(wanted))
    created: list[PartyKeys] = []
    rotated: list[PartyKeys] = []
    for party in targets:
        if not store.public(party):
            created.append(store.create_party(party, suite=suite, extra_suites=extra))
        elif (new := add_missing_suites(store, party, [suite, *extra])) is not None:
            rotated.append(new)
    for verb, record in [*(("created", r) for r in created), *(("rotated", r) for r in rotated)]:
        if as_json:
            echo_json(record.model_dump(mode="json"))
        else:
            typer.echo(f"{verb} {_line(record)}")
    if not as_json:
        had = len(targets) - len(created)
        note = f" ({len(rotated)} rotated to add a suite)" if rotated else ""
        typer.echo(f"{len(created)} created, {had} already had keys{note}")


@app.command("list")
@handle_errors
def list_command(parties: _PARTIES = None, as_json: _JSON = False) -> None:
    """List key generations, newest first per party."""
    store = _store(load_settings())
    for party in parties or store.parties():
        for record in store.public(party):
            if as_json:
                echo_json(record.model_dump(mode="json"))
            else:
                typer.echo(_line(record))


@app.command("rotate")
@handle_errors
def rotate_command(
    party: Annotated[str, typer.Option("--party", metavar="PARTY", help="The party.")],
    suite: Annotated[
        KeySuite | None,
        typer.Option("--suite", help="Suite of the new key (default: the current one)."),
    ] = None,
    as_json: _JSON = False,
) -> None:
    """New active keys for a party; the old ones are retired (they still decrypt)."""
    record = _store(load_settings()).rotate(party, suite=suite)
    if as_json:
        echo_json(record.model_dump(mode="json"))
    else:
        typer.echo(f"rotated {_line(record)}")


@app.command("revoke")
@handle_errors
def revoke_command(
    kid: Annotated[str, typer.Option("--key", metavar="KID", help="Signing or encryption id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded with the key).")],
    as_json: _JSON = False,
) -> None:
    """Revoke a key generation: it never signs or is encrypted to again.

    Signatures by it are rejected. Run `rotate` to give the party new keys.
    """
    record = _store(load_settings()).revoke(kid, reason=reason)
    if as_json:
        echo_json(record.model_dump(mode="json"))
    else:
        typer.echo(f"revoked {_line(record)}")
        typer.echo(f"party {record.party} has no active key until `hub keys rotate`")


@app.command("export")
@handle_errors
def export_command(
    parties: _PARTIES = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Public keys as JSON, to share with agencies (every generation, with status)."""
    store = _store(load_settings())
    names = parties or store.parties()
    records: list[dict[str, Any]] = []
    for party in names:
        found = store.public(party)
        if not found:
            raise UnknownPartyError(f"party {party}: expected keys, found none; run `init`")
        records.extend(r.model_dump(mode="json") for r in found)
    document: dict[str, Any] = {"format": DIRECTORY_FORMAT, "keys": records}
    if HUB_PARTY in names:
        # federation (issue 20): a peer pins the audit log's key too, to check this hub's
        # checkpoints and proofs (hub.federation.proofs)
        log_key = export_log_key(load_settings())
        if log_key is not None:
            document["log_key"] = log_key
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(records)} key generations to {out}")


@app.command("import")
@handle_errors
def import_command(
    source: Annotated[Path, typer.Argument(help="A peer hub's `hub keys export --party hub`.")],
    peer: Annotated[
        str, typer.Option("--peer", metavar="PEER", help="The peer's party id in this protocol.")
    ],
    as_json: _JSON = False,
) -> None:
    """Pin a peer hub's public keys (federation): transfers are sealed to them and verified.

    The peer must be a party of kind peer-hub in the protocol. Replaces earlier pins of that
    peer; every key id is checked against its public key. Compare the printed key ids with
    the peer's own `hub keys list --party hub` over another channel before relying on them.
    """
    settings = load_settings()
    protocol = load_protocol(settings.protocol)
    if not protocol.is_peer(peer):
        kinds = ", ".join(p.id for p in protocol.peers) or "none"
        raise UnknownPartyError(
            f"peer {peer}: expected a party of kind peer-hub in {settings.protocol} "
            f"(peers: {kinds})"
        )
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: expected a readable key export, got {exc}") from exc
    records = parse_export(text, source=str(source), directory_format=DIRECTORY_FORMAT)
    path = PeerPins(settings.keys_dir).pin(peer, records)
    log_key = import_log_key(settings.keys_dir, peer, text)
    for record in records:
        if as_json:
            echo_json({"peer": peer, **record.model_dump(mode="json")})
        else:
            typer.echo(f"pinned {peer:<20} {_line(record)}")
    if as_json:
        if log_key is not None:
            echo_json({"peer": peer, "log_key": log_key})
        return
    typer.echo(f"{len(records)} key generations of peer {peer} pinned in {path}")
    if log_key is not None:
        typer.echo(f"pinned {peer:<20} audit log key {log_key}")
    else:
        typer.echo(
            f"no audit log key in {source}: proofs from {peer}'s log cannot be checked until "
            "you import an export taken after its hub first ran",
            err=True,
        )


@app.command("shred")
@handle_errors
def shred_command(
    case: _CASE,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Destroy a case key: its stored ciphertext becomes unreadable, for good.

    Refused while the case is under a legal hold. Audit records of disclosures remain.
    """
    settings = load_settings()
    cases = _cases(settings)
    name = cases.pseudonym(case)
    if not yes:
        typer.confirm(f"shred case {name}? this cannot be undone", abort=True)
    destroyed = cases.shred(case)
    state = "key destroyed" if destroyed else "no key held; tombstone recorded"
    audit_case_action(
        settings,
        case_ref=case,
        decision=AuditDecision.SHREDDED,
        reason=f"case key shredded: {state}",
        by=getpass.getuser(),
    )
    typer.echo(f"shredded case {name}: {state}")


@app.command("expire")
@handle_errors
def expire_command(
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO", help="Judge as of this time (default: now)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be shredded; change nothing.")
    ] = False,
    as_json: _JSON = False,
) -> None:
    """Shred every case whose retention has ended (held cases are skipped).

    A case expires at the latest end of retention among its disclosures (each rule's
    `retention`, counted from the disclosure). Each expiry is audited as `shredded`.
    """
    settings = load_settings()
    at = _parse_now(now)
    store = open_store(settings)
    try:
        results = expire_cases(
            _cases(settings),
            store,
            load_protocol(settings.protocol),
            clock=lambda: at,
            dry_run=dry_run,
            by=getpass.getuser(),
        )
    finally:
        store.close()
    for item in results:
        if as_json:
            echo_json({**item.as_json(), "dry_run": dry_run})
        elif item.status in ("expired", "held", "kept"):
            verb = {"expired": "would shred" if dry_run else "shredded"}.get(item.status)
            typer.echo(f"{verb or item.status:<11} case {item.case}: {item.reason}")
    if not as_json:
        count = {s: sum(r.status == s for r in results) for s in ("expired", "held", "kept")}
        later = len(results) - sum(count.values())
        done = "due (dry run)" if dry_run else "shredded"
        typer.echo(
            f"{count['expired']} {done}, {count['held']} held (skipped), "
            f"{count['kept']} kept (no automatic retention), {later} not yet due"
        )


def _parse_now(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--now: expected an ISO 8601 time, got {text!r}") from exc
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _registered_refs(settings: HubSettings) -> list[str]:
    """Case and ban references the hub's workflow registers hold (none if it has none)."""
    if not has_state(settings):
        return []
    with open_flag_register(settings) as flags, open_ban_register(settings) as bans:
        return [f.case_ref for f in flags.flags()] + [b.ban_ref for b in bans.bans()]


def _known_case(settings: HubSettings, cases: CaseKeys, case: str) -> bool:
    """Whether the hub has met this case: a register entry, an audit record or a case key."""
    name = cases.pseudonym(case)
    if case in _registered_refs(settings) or name in cases.live_cases():
        return True
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        return False
    store = open_store(settings)
    try:
        return bool(store.query(case_pseudonym=name, limit=1))
    finally:
        store.close()


@hold_app.command("add")
@handle_errors
def hold_add_command(
    case: _CASE,
    reason: Annotated[str, typer.Option("--reason", help="e.g. 'Domestic Homicide Review'.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who places the hold (default: your login).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Hold a case the hub has not met yet (in advance)."),
    ] = False,
) -> None:
    """Place a legal hold on a case.

    The case must be one the hub knows (a flag or ban in its registers, an audit record, a
    case key): a mistyped reference would otherwise hold nothing. --force holds it in
    advance, for a case whose events have not reached the hub yet.
    """
    settings = load_settings()
    by = by or getpass.getuser()
    cases = _cases(settings)
    known = _known_case(settings, cases, case)
    if not known and not force:
        raise LegalHoldError(
            f"case {case}: expected a case this hub knows, found no flag, ban, audit record "
            "or case key with that reference; check it, or hold it in advance with --force"
        )
    hold = cases.add_hold(case, reason, by)
    audit_case_action(
        settings,
        case_ref=case,
        decision=AuditDecision.HOLD_PLACED,
        reason=f"legal hold: {reason}",
        by=by,
    )
    if not known:
        typer.echo(f"warning: no case {case} is known to this hub yet: held in advance", err=True)
    typer.echo(f"hold placed on case {case} ({hold.case}) by {hold.by}: {hold.reason}")


@hold_app.command("lift")
@handle_errors
def hold_lift_command(
    case: _CASE,
    by: Annotated[
        str | None, typer.Option("--by", help="Who lifts the hold (default: your login).")
    ] = None,
) -> None:
    """Lift a case's legal hold (the case may then be shredded)."""
    settings = load_settings()
    by = by or getpass.getuser()
    hold = _cases(settings).lift_hold(case, by)
    audit_case_action(
        settings,
        case_ref=case,
        decision=AuditDecision.HOLD_LIFTED,
        reason=f"legal hold lifted (placed by {hold.by}: {hold.reason})",
        by=by,
    )
    typer.echo(
        f"hold lifted on case {case} ({hold.case}) by {by} (placed by {hold.by}: {hold.reason})"
    )


@hold_app.command("list")
@handle_errors
def hold_list_command(as_json: _JSON = False) -> None:
    """List current legal holds: the case reference where the hub's registers hold it.

    Holds are kept by case pseudonym; the reference is found in the MARAC flag and ban
    registers of this data dir (a case held in advance, or known only to the audit log,
    shows its pseudonym alone).
    """
    settings = load_settings()
    cases = _cases(settings)
    holds = cases.holds()
    refs = {cases.pseudonym(ref): ref for ref in _registered_refs(settings)} if holds else {}
    for hold in holds:
        ref = refs.get(hold.case)
        if as_json:
            echo_json({**hold.model_dump(mode="json"), "case_ref": ref})
        else:
            name = (
                f"{ref} ({hold.case})" if ref else f"{hold.case} (reference not in the registers)"
            )
            typer.echo(f"{name}  since {hold.placed_at:%Y-%m-%d}  by {hold.by}: {hold.reason}")
    if not holds and not as_json:
        typer.echo(f"no legal holds in {settings.data_dir}")


for _name, _command in (
    ("add", hold_add_command),
    ("lift", hold_lift_command),
    ("list", hold_list_command),
):
    _moved_hold_app.command(_name)(_command)
