"""Ownership of a transferred case (issue 20): the new area takes it, the old one lets go.

A transfer leaves the case with both areas: the old one's Art 19 corrections keep following
it to the new one. That stops when the new area's coordinator publishes
``uk.csp.marac.transfer.ownership.v1`` (naming the old area's hub, ``previous_owner``): its
hub sends it back over the link, and the old area's hub

- records that the peer owns the case (``OwnershipRegister``, shared state like the other
  registers: ``hub.state``), written as an effect of the ``federation`` process
  (``hub.processes.federation``), on both sides;
- from then on withholds every later event of the case from that peer, audited with why
  (``Router._ownership_withheld``): updates, withdrawals and expiries stop following it;
- publishes, as itself, ``uk.csp.marac.transfer.withdraw.v1`` for the case
  (``withdraw_message``): its protocol's Art 19 correction delivers it to every party that
  holds the flag, each delivery audited, telling them to withdraw it.

``hub federation status`` shows each case owned by a peer (and each taken from one).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.models import EventAttributes
from hub.processes.base import Stores
from hub.schemas import SchemaRegistry
from hub.workflows.sqlite_state import SQLiteState

__all__ = [
    "OWNERSHIP_TYPE",
    "WITHDRAW_TYPE",
    "Owned",
    "OwnershipRegister",
    "OwnershipTaken",
    "withdraw_id",
    "withdraw_message",
]

OWNERSHIP_TYPE = "uk.csp.marac.transfer.ownership.v1"
WITHDRAW_TYPE = "uk.csp.marac.transfer.withdraw.v1"
_NS = uuid.UUID("0c6d2f1e-8b3a-4e59-a1d7-5f2e9c4b7a13")
_HUB = "hub"
#: what the holders are told (the new area contacts them if it needs them)
INSTRUCTION = (
    "Withdraw this MARAC flag from your systems: the case moved to another partnership, "
    "which now owns it. Keep no copy beyond your own retention rules."
)


@dataclass(frozen=True)
class Owned:
    """A case a peer took (``side`` theirs) or this area took from a peer (``ours``)."""

    case_ref: str
    peer: str
    side: Literal["theirs", "ours"]
    event_id: str
    transfer_event_id: str | None
    taken_on: dt.date


_DDL = (
    "CREATE TABLE IF NOT EXISTS federation_owned (case_ref TEXT NOT NULL, side TEXT NOT NULL, "
    "peer TEXT NOT NULL, event_id TEXT NOT NULL, transfer_event_id TEXT, "
    "taken_on TEXT NOT NULL, PRIMARY KEY (case_ref, side))",
)
_SELECT = "SELECT case_ref, peer, side, event_id, transfer_event_id, taken_on FROM federation_owned"


class OwnershipRegister(SQLiteState):
    """Cases whose ownership moved between this hub and a peer.

    A table in the workflow registers' file, or with ``HUB_STATE_URL`` in the PostgreSQL
    state every worker shares (``hub.state.open_ownership_register``): whichever worker routes
    a later event of the case must see the move. One row per case and side, the first
    ownership event kept (a resend of the same event is the same row).
    """

    label = "federation ownership register"
    ddl = _DDL

    def take(self, owned: Owned) -> None:
        """Record ``owned`` (idempotent: the first event for a case and side is kept)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO federation_owned VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    owned.case_ref,
                    owned.side,
                    owned.peer,
                    owned.event_id,
                    owned.transfer_event_id,
                    owned.taken_on.isoformat(),
                ),
            )

    def owner(self, case_ref: str) -> Owned | None:
        """The peer that took ``case_ref`` from this area, if one did."""
        with self._read() as conn:
            row = conn.execute(
                _SELECT + " WHERE case_ref = ? AND side = 'theirs'",
                (case_ref,),
            ).fetchone()
        return _owned(row) if row else None

    def all(self) -> list[Owned]:
        """Every case whose ownership moved, both sides, oldest first."""
        with self._read() as conn:
            rows = conn.execute(_SELECT + " ORDER BY taken_on, case_ref").fetchall()
        return [_owned(row) for row in rows]


def _owned(row: tuple[Any, ...]) -> Owned:
    case, peer, side, event_id, transfer, taken = row
    return Owned(case, peer, side, event_id, transfer, dt.date.fromisoformat(taken))


@dataclass(frozen=True, slots=True)
class OwnershipTaken:
    """Effect: record a move of ownership (``hub.processes.base.Effect``)."""

    owned: Owned

    def apply(self, stores: Stores) -> None:
        """Write it to the register, if this worker has one."""
        register = stores.get(OwnershipRegister)
        if register is not None:
            register.take(self.owned)


def owned_from(event_id: str, data: Mapping[str, Any], *, publisher_peer: str | None) -> Owned:
    """The ``Owned`` an ownership event says: theirs when a peer sent it, ours otherwise."""
    taken = data["taken_on"]
    taken_on = taken if isinstance(taken, dt.date) else dt.date.fromisoformat(str(taken))
    transfer = data.get("transfer_event_id")
    return Owned(
        case_ref=str(data["case_ref"]),
        peer=publisher_peer if publisher_peer is not None else str(data["previous_owner"]),
        side="theirs" if publisher_peer is not None else "ours",
        event_id=event_id,
        transfer_event_id=str(transfer) if transfer else None,
        taken_on=taken_on,
    )


def withdraw_id(ownership_event_id: str) -> str:
    """The withdrawal notice's id: derived, so a re-route of the ownership repeats it."""
    return str(uuid.uuid5(_NS, ownership_event_id))


def withdraw_message(
    envelope: PartyEnvelope,
    registry: SchemaRegistry,
    *,
    owned: Owned,
    now: dt.datetime,
) -> wire.WireMessage:
    """The hub's own ``uk.csp.marac.transfer.withdraw.v1`` for the case, on ``hub.in.hub``.

    Signed by this hub and sealed to it, like the workflows' events: the router routes it by
    the protocol (the Art 19 correction reaches every holder) and audits each delivery.
    """
    body = {
        "case_ref": owned.case_ref,
        "new_owner": owned.peer,
        "taken_on": owned.taken_on,
        "instruction": INSTRUCTION,
    }
    attrs = EventAttributes(
        id=withdraw_id(owned.event_id),
        source=wire.source_for(_HUB),
        type=WITHDRAW_TYPE,
        time=now,
        subject=None,
        datacontenttype=wire.AVRO,
    )
    key = owned.case_ref.encode()
    sealed = envelope.seal(
        attrs, key=key, plaintext=registry.encode(WITHDRAW_TYPE, body), recipient=_HUB
    )
    return wire.WireMessage(
        topic=f"hub.in.{_HUB}", key=key, value=sealed.value, headers=sealed.headers
    )
