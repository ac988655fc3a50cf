"""`hub federation ...`: links to peer hubs (issue 20, ``hub.federation``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import typer

from hub.agents.supervisor import read_state
from hub.audit.store import open_store
from hub.cli.common import echo_json, handle_errors, load_settings
from hub.errors import UnknownPartyError
from hub.federation.inbound import refused_by
from hub.federation.link import ForwardedLog, LinkStats, run_link
from hub.federation.link_worker import peer_security
from hub.federation.ownership import (
    OWNERSHIP_TYPE,
    Owned,
)
from hub.federation.peer import peer_hub_id
from hub.federation.proofs import PROOF_TYPE
from hub.federation.receipts import RECEIPT_TYPE, receipt_id
from hub.log import configure_logging
from hub.models import AuditDecision
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.state import has_state, open_ownership_register

#: deliveries to a peer that are not transfers of a case: the hub's own messages about one
_NOT_TRANSFERS = frozenset({RECEIPT_TYPE, PROOF_TYPE, OWNERSHIP_TYPE})

__all__ = ["app"]

app = typer.Typer(
    help="Link this hub to peer hubs: Marac-to-Marac transfers between partnerships.",
    no_args_is_help=True,
)


@app.command("link")
@handle_errors
def link_command(
    peer: Annotated[
        str, typer.Option("--peer", metavar="PEER", help="The peer hub's party id here.")
    ],
    peer_bootstrap: Annotated[
        str,
        typer.Option("--peer-bootstrap", metavar="HOST:PORT", help="The peer hub's broker."),
    ],
) -> None:
    """Carry deliveries to PEER from this hub's broker to the peer's, until SIGINT/SIGTERM.

    Reads hub.out.PEER here and writes each record unopened to hub.in.<this hub's hub_id> on
    the peer's broker: at least once, never twice for an event it has seen forwarded, offsets
    committed only after the peer's broker acknowledged. Prints `link ready` when running.
    """
    settings = load_settings()
    configure_logging(settings.log_level)
    protocol = load_protocol(settings.protocol)
    hub_id = peer_hub_id(protocol, peer, path=settings.protocol, source="--peer")
    bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap
    forwarded = ForwardedLog(settings.data_dir / "federation" / f"{peer}.sqlite3")
    stats = LinkStats()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.echo(f"link ready peer={peer} from={bootstrap} to={peer_bootstrap}")
        await run_link(
            peer=peer,
            hub_id=hub_id,
            bootstrap=bootstrap,
            peer_bootstrap=peer_bootstrap,
            forwarded=forwarded,
            security=settings.kafka_security,
            peer_security=peer_security(settings, peer),
            stop=stop,
            stats=stats,
            lost_log_grace=settings.lost_log_grace,
        )

    try:
        asyncio.run(main())
    finally:
        forwarded.close()
    typer.echo(
        f"link stopped: {stats.forwarded} forwarded, {stats.already_forwarded} already "
        f"forwarded, {stats.not_for_peer} not sealed to {peer}"
    )


@app.command("status")
@handle_errors
def status_command(
    peer: Annotated[
        str | None,
        typer.Option("--peer", metavar="PEER", help="Only transfers to this peer."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Each transfer this hub delivered to a peer, and whether the peer's receipt came back.

    From the audit log: `sent` (delivered to the peer's outbound topic here), `received` (the
    peer hub's signed receipt arrived: its protocol accepted the transfer and delivered it to
    its MARAC coordinator), `acknowledged` (its coordinator acknowledged the transfer),
    `refused` (the peer's protocol refused it: `hub audit query` shows why). Event ids only,
    never case references.
    """
    settings = load_settings()
    protocol = load_protocol(settings.protocol)
    if peer is not None and not protocol.is_peer(peer):
        raise UnknownPartyError(f"peer {peer}: expected a party of kind peer-hub, got {peer!r}")
    peers = [peer] if peer is not None else [p.id for p in protocol.peers]
    rows: list[dict[str, Any]] = []
    with contextlib.closing(open_store(settings)) as store:
        for pid in peers:
            delivered = store.query(party=pid, decision=AuditDecision.DELIVERED, limit=1_000_000)
            refusals = [
                r.reason
                for r in store.query(party=pid, decision=AuditDecision.REJECTED, limit=1_000_000)
            ]
            for record in delivered:
                if record.recipient != pid or record.event_type in _NOT_TRANSFERS:
                    continue
                receipts = [
                    r
                    for r in store.query(event_id=receipt_id(record.event_id))
                    if r.publisher == pid
                ]
                acknowledged = [
                    r
                    for r in store.query(event_id=receipt_id(record.event_id, "acknowledged"))
                    if r.publisher == pid
                ]
                state = "acknowledged" if acknowledged else "received" if receipts else "sent"
                if state == "sent" and any(
                    refused_by(pid, record.event_id) in reason for reason in refusals
                ):
                    state = "refused"
                rows.append(
                    {
                        "peer": pid,
                        "event_id": record.event_id,
                        "event_type": record.event_type,
                        "sent_at": record.time.isoformat(),
                        "rule": record.rule,
                        "state": state,
                        "receipt_event_id": receipts[0].event_id if receipts else None,
                    }
                )
    owned = _ownership(settings)
    taken = {o.transfer_event_id: o for o in owned if o.side == "theirs" and o.transfer_event_id}
    for row in rows:
        move = taken.get(row["event_id"])
        if move is not None and move.peer == row["peer"]:
            row["state"] = "owned"  # the peer's coordinator took the case: no longer followed
            row["ownership_event_id"] = move.event_id
            row["owned_since"] = move.taken_on.isoformat()
    for row in rows:
        if as_json:
            echo_json(row)
        else:
            typer.echo(
                f"{row['sent_at'][:19]}Z  {row['peer']:<12} {row['event_id']}  "
                f"{row['state']:<8} {row['event_type']}"
            )
    for move in owned:
        if peer is not None and move.peer != peer:
            continue
        line = {
            "peer": move.peer,
            "ownership_event_id": move.event_id,
            "transfer_event_id": move.transfer_event_id,
            "taken_on": move.taken_on.isoformat(),
            "state": "owned by peer" if move.side == "theirs" else "ownership taken here",
        }
        if as_json:
            echo_json(line)
        elif move.side == "theirs":
            typer.echo(
                f"{move.taken_on}  {move.peer:<12} took ownership (event {move.event_id}, "
                f"transfer {move.transfer_event_id or '-'}): no longer followed there"
            )
        else:
            typer.echo(
                f"{move.taken_on}  {move.peer:<12} ownership taken here (event {move.event_id}, "
                f"transfer {move.transfer_event_id or '-'})"
            )
    if not as_json:
        received = sum(r["state"] != "sent" for r in rows)
        acked = sum(r["state"] in ("acknowledged", "owned") for r in rows)
        mine = sum(o.side == "theirs" for o in owned)
        typer.echo(
            f"{len(rows)} transfers, {received} received by the peer, {acked} acknowledged by "
            f"its coordinator, {mine} cases owned by a peer now"
        )


def _ownership(settings: HubSettings) -> list[Owned]:
    """Every move of ownership the register holds (none before a hub ran here)."""
    if not has_state(settings):
        return []
    with open_ownership_register(settings) as register:
        return register.all()


@app.command("demo")
@handle_errors
def demo_command() -> None:
    """Two linked hubs on two embedded brokers: a victim moves from Redditch to Worcester.

    North and South Worcestershire hubs under their own protocols, keys and audit logs,
    linked both ways; the North's flag update is transferred, the South's coordinator
    acknowledges it, and both sides' audit counts are printed. Data in HUB_DATA_DIR/federation-demo.
    """
    from hub.federation.demo import run_federation_demo  # starts brokers: only when asked

    settings = load_settings()
    configure_logging(settings.log_level)
    result = run_federation_demo(settings.data_dir / "federation-demo", report=typer.echo)
    typer.echo(f"transfer {result.transfer_event_id}: received and acknowledged by the South")
    for side, counts in (("north", result.north), ("south", result.south)):
        shown = "  ".join(f"{name} {n}" for name, n in counts.items() if n)
        typer.echo(f"{side} audit log: {shown}")
