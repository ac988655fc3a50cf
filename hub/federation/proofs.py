"""Proving a hand-over across two partnerships' audit logs (issue 20).

Each hub's audit log is an RFC 9162 Merkle tree under C2SP checkpoints signed with the hub's
log key (``hub.audit.checkpoint``). A peer pins that key with the hub's keys (``hub keys
export --party hub`` carries ``log_key``; ``hub keys import --peer`` keeps it in
``<keys>/peers/<peer>.log-key``), so it can check, on its own, that the other log holds a
record, without trusting the other hub's word or its database:

- an *entry* is one record's canonical JSON (exactly its leaf's bytes), its leaf index, the
  inclusion proof and the signed checkpoint it is proved against;
- a *bundle* (``hub audit proof --event ID --export FILE``) is a file of entries, in the
  spirit of C2SP's proof bundles (a checkpoint, a leaf and the path between them);
- ``uk.csp.marac.transfer.proof.v1`` carries one entry to the peer over the link: the audit
  sink publishes it as the hub's own event on ``hub.in.hub`` once a checkpoint it signs
  covers the record (``PeerProofs``, ``proof_message``), for the receiving hub's record of
  the delivery to its MARAC coordinator and for the sending hub's record of the delivery to
  the peer. It carries one of this hub's audit records to another partnership, so it is a
  disclosure like any other: the router routes it under the protocol's proofs-to-peer rule
  (``when: peer in [...]``), audits the delivery to the peer before producing it to
  ``hub.out.<peer>``, and the link forwards it as any delivery. The peer's router verifies
  it with the pinned log key (a proof that does not verify is quarantined and audited)
  and, once its router accepted it, keeps it (``ProofRegister``, in the shared state, written
  by the federation process's effect ``ProofKept``), so ``hub audit proof --peer P --event
  E`` re-verifies it at any time, on any host.

Verification needs nothing but the entry and the pinned log key.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hub.audit.checkpoint import Checkpoint, NoteVerifier, log_signer
from hub.audit.merkle import leaf_hash, verify_inclusion
from hub.errors import AuditIntegrityError, ConfigError, HubError
from hub.keys.peers import PeerPins
from hub.models import AuditDecision, AuditRecord
from hub.processes.base import Stores
from hub.settings import HubSettings
from hub.workflows.sqlite_state import SQLiteState

if TYPE_CHECKING:  # the audit log pulls in retention and the protocol layer: not at import
    from hub.audit.log import AuditLog
    from hub.audit.store import AuditStore
    from hub.envelope.party import PartyEnvelope
    from hub.envelope.wire import WireMessage
    from hub.policies.model import Protocol
    from hub.schemas import SchemaRegistry

__all__ = [
    "BUNDLE_FORMAT",
    "PROOF_TYPE",
    "PeerProofs",
    "ProofError",
    "ProofKept",
    "ProofRegister",
    "ProvenRecord",
    "bundle",
    "entries_for",
    "export_log_key",
    "import_log_key",
    "pin_log_key",
    "pinned_log_key",
    "proof_id",
    "proof_message",
    "verify_entry",
]

PROOF_TYPE = "uk.csp.marac.transfer.proof.v1"
BUNDLE_FORMAT = "uk.csp.hub.audit.proof-bundle.v1"
_NS = uuid.UUID("7d1f9a3c-52b4-4c86-8e0f-1a2b3c4d5e6f")
#: what is never proved to a peer: the proofs and receipts themselves, checkpoints
_NOT_HANDOVERS = frozenset(
    {PROOF_TYPE, "uk.csp.marac.transfer.receipt.v1", "uk.csp.audit.checkpoint.v1"}
)
_ENTRY_FIELDS = ("record", "leaf_index", "tree_size", "inclusion_proof", "checkpoint")


class ProofError(HubError):
    """A proof from a peer that does not verify, or that cannot be read."""


def proof_id(record_id: str) -> str:
    """The proof message's event id: derived from the record, so a resend repeats it."""
    return str(uuid.uuid5(_NS, record_id))


# -- the peer's log key -------------------------------------------------------------------


def _log_key_path(keys_dir: Path, peer: str) -> Path:
    return PeerPins(keys_dir).path(peer).with_suffix(".log-key")


def pin_log_key(keys_dir: Path, peer: str, verifier_key: str) -> Path:
    """Pin ``peer``'s checkpoint verifier key (``<name>+<id>+<key>``), replacing any earlier.

    Raises:
        ConfigError: not a verifier key.
    """
    NoteVerifier.from_key(verifier_key)
    path = _log_key_path(keys_dir, peer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".log-key.tmp")
    tmp.write_text(verifier_key.strip() + "\n", "utf-8")
    os.replace(tmp, path)
    return path


def pinned_log_key(keys_dir: Path, peer: str) -> NoteVerifier:
    """``peer``'s pinned checkpoint verifier.

    Raises:
        ConfigError: none pinned (the hint names the command), or the file is not a key.
    """
    path = _log_key_path(keys_dir, peer)
    try:
        text = path.read_text("utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"peer {peer}: expected its pinned audit log key in {path}, found none; import "
            f"its `hub keys export --party hub` (taken after its hub first ran) with "
            f"`hub keys import --peer {peer} FILE`"
        ) from None
    return NoteVerifier.from_key(text)


def export_log_key(settings: HubSettings) -> str | None:
    """The checkpoint verifier key of this hub (``hub keys export``); None before a hub ran."""
    try:
        return log_signer(settings).verifier_key
    except ConfigError:  # no hub has run here yet: only the audit sink creates the key
        return None


def import_log_key(keys_dir: Path, peer: str, export: str) -> str | None:
    """Pin the ``log_key`` of a peer's ``hub keys export`` (None when it carries none).

    Raises:
        ConfigError: a ``log_key`` that is not a verifier key.
    """
    try:
        document = json.loads(export)
    except json.JSONDecodeError:
        return None
    key = document.get("log_key") if isinstance(document, dict) else None
    if not isinstance(key, str):
        return None
    pin_log_key(keys_dir, peer, key)
    return key


# -- entries and bundles -----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def entries_for(log: AuditLog, store: AuditStore, ref: str) -> list[dict[str, Any]]:
    """An entry for each record of event (or record id) ``ref`` in this hub's log.

    Raises:
        AuditError: no such record; AuditIntegrityError: the store does not match its log.
    """
    out = []
    for proof in log.inclusion_proofs(ref):
        (data,) = store.leaves(proof.leaf_index, proof.leaf_index + 1)
        out.append(
            {
                "record": bytes(data).decode("utf-8"),
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "inclusion_proof": [_b64(h) for h in proof.proof],
                "checkpoint": proof.checkpoint,
            }
        )
    return out


def bundle(origin: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A proof bundle: the log's origin and its entries (``hub audit proof --export``)."""
    return {"format": BUNDLE_FORMAT, "origin": origin, "proofs": [dict(e) for e in entries]}


def read_bundle(text: str, *, source: str) -> list[dict[str, Any]]:
    """The entries of a bundle file.

    Raises:
        ProofError: not a bundle of this format.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProofError(f"{source}: expected a proof bundle (JSON), got {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ProofError(
            f"{source}: expected a proof bundle of format {BUNDLE_FORMAT} "
            f"(`hub audit proof --event ID --export FILE`), got {found!r}"
        )
    proofs = document.get("proofs")
    if not isinstance(proofs, list) or not all(isinstance(p, dict) for p in proofs):
        raise ProofError(f"{source}: expected a list of proofs, got {type(proofs).__name__}")
    return proofs


@dataclass(frozen=True)
class ProvenRecord:
    """A record another hub's log holds, proved against its signed checkpoint."""

    record: AuditRecord
    leaf_index: int
    checkpoint: Checkpoint
    signer: str

    def describe(self) -> str:
        """One line for the IG officer: what the record says and where it stands."""
        r = self.record
        to = f" to {r.recipient}" if r.recipient else ""
        by = f" from {r.publisher}" if r.publisher else ""
        return (
            f"record {r.record_id}: event {r.event_id} {r.decision.value}{to}{by} at "
            f"{r.time.isoformat()} (rule {r.rule or '-'}); leaf {self.leaf_index} of "
            f"{self.checkpoint.size} in log {self.checkpoint.origin}, checkpoint signed by "
            f"{self.signer}"
        )


def verify_entry(entry: Mapping[str, Any], verifier: NoteVerifier) -> ProvenRecord:
    """Check one entry against the pinned log key: signature, then the inclusion proof.

    Raises:
        ProofError: a field is missing or malformed, the checkpoint is not signed by the
            pinned key, or the record is not the leaf the proof leads to.
    """
    missing = [name for name in _ENTRY_FIELDS if name not in entry]
    if missing:
        raise ProofError(f"proof: expected fields {', '.join(missing)}, got none")
    try:
        data = str(entry["record"]).encode("utf-8")
        index, size = int(entry["leaf_index"]), int(entry["tree_size"])
        path = [base64.b64decode(h, validate=True) for h in entry["inclusion_proof"]]
        record = AuditRecord.model_validate_json(data)
    except (TypeError, ValueError, binascii.Error, ValidationError) as exc:
        raise ProofError(f"proof: expected a record, indexes and base64 hashes, got {exc}") from exc
    try:
        head = verifier.open_checkpoint(str(entry["checkpoint"]))
        if head.size != size:
            raise AuditIntegrityError(
                f"proof: expected a proof against the checkpoint's size {head.size}, got {size}"
            )
        verify_inclusion(
            leaf=leaf_hash(data), index=index, size=size, proof=path, root=head.root_hash
        )
    except AuditIntegrityError as exc:
        raise ProofError(
            f"proof of record {record.record_id} with log key {verifier.name}: {exc}"
        ) from exc
    return ProvenRecord(record=record, leaf_index=index, checkpoint=head, signer=verifier.name)


# -- proofs received from a peer ---------------------------------------------------------


class ProofRegister(SQLiteState):
    """Verified entries received from peers, by peer and the transfer they are about.

    A table of the workflow registers' file (``federation_proofs``), or with
    ``HUB_STATE_URL`` the PostgreSQL state every worker shares
    (``hub.state.open_proof_register``): whichever worker routed a peer's proof, on whichever
    host, ``hub audit proof --peer`` reads it. Written only by the federation process's
    effect (``ProofKept``) once the router accepted the proof. One entry per record id; a
    resend replaces it.
    """

    label = "federation proof register"
    ddl = (
        "CREATE TABLE IF NOT EXISTS federation_proofs (peer TEXT NOT NULL, "
        "transfer_event_id TEXT NOT NULL, record_id TEXT NOT NULL, entry TEXT NOT NULL, "
        "PRIMARY KEY (peer, record_id))",
    )

    def add(self, peer: str, transfer_event_id: str, entry: Mapping[str, Any]) -> None:
        """Keep ``entry`` of ``peer`` for a transfer (a resend of the record replaces it)."""
        record_id = str(json.loads(str(entry["record"]))["record_id"])  # verified when opened
        kept = json.dumps({name: entry[name] for name in _ENTRY_FIELDS}, sort_keys=True)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO federation_proofs VALUES (?, ?, ?, ?) ON CONFLICT (peer, record_id) "
                "DO UPDATE SET transfer_event_id = excluded.transfer_event_id, "
                "entry = excluded.entry",
                (peer, transfer_event_id, record_id, kept),
            )

    def entries(self, peer: str, transfer_event_id: str) -> list[dict[str, Any]]:
        """The entries kept from ``peer`` for a transfer (empty when none came)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT entry FROM federation_proofs WHERE peer = ? AND transfer_event_id = ? "
                "ORDER BY record_id",
                (peer, transfer_event_id),
            ).fetchall()
        return [json.loads(entry) for (entry,) in rows]


@dataclass(frozen=True, slots=True)
class ProofKept:
    """Effect: keep a peer's verified proof (``hub.processes.base.Effect``).

    Returned by the federation process only for a proof the router accepted; applied by the
    worker with the event's other effects, inside the register's group commit.
    """

    peer: str
    transfer_event_id: str
    #: the entry's fields as canonical JSON (an effect is a value: comparable, hashable)
    entry: str

    @classmethod
    def of(cls, peer: str, data: Mapping[str, Any]) -> ProofKept:
        """The effect for a proof event's data, as the router opened it."""
        entry = {name: data[name] for name in _ENTRY_FIELDS}
        return cls(peer, str(data["transfer_event_id"]), json.dumps(entry, sort_keys=True))

    def apply(self, stores: Stores) -> None:
        """Write it to the register, if this worker has one."""
        register = stores.get(ProofRegister)
        if register is not None:
            register.add(self.peer, self.transfer_event_id, json.loads(self.entry))


# -- the audit sink's side: which records to prove to a peer ------------------------------


def proof_message(
    envelope: PartyEnvelope,
    *,
    peer: str,
    event_id: str,
    body: Mapping[str, Any],
    registry: SchemaRegistry,
    suite: str | None = None,
) -> WireMessage:
    """A proof for ``peer``, as the hub's own event on ``hub.in.hub`` (sealed to the hub).

    Never straight to ``hub.out.<peer>``: the router decides it under the protocol (a rule
    naming the peer for proofs) and audits the delivery before it is produced.

    Raises:
        KeyStoreError: the hub has no usable key to seal or sign with.
    """
    from hub.broker import topics
    from hub.envelope import wire
    from hub.keys.model import HUB_PARTY
    from hub.models import EventAttributes

    attrs = EventAttributes(
        id=event_id,
        source=wire.source_for(HUB_PARTY),
        type=PROOF_TYPE,
        time=dt.datetime.now(dt.UTC),
        subject=None,
        datacontenttype=wire.AVRO,
    )
    payload = registry.encode(PROOF_TYPE, {**body, "peer": peer})
    sealed = envelope.seal(attrs, key=None, plaintext=payload, recipient=HUB_PARTY, suite=suite)
    return wire.WireMessage(
        topic=topics.HUB_INBOUND, key=None, value=sealed.value, headers=sealed.headers
    )


class PeerProofs:
    """Records of hand-overs this hub's audit sink proves to a peer once a checkpoint covers them.

    A hand-over record is a ``delivered`` record of a peer's event to this hub's MARAC
    coordinator (the receiving side) or of this hub's event to a peer (the sending side).
    Kept in memory between a write and the next checkpoint: a sink that restarts in between
    sends none for them, and ``hub audit proof --export`` still makes the bundle by hand.
    """

    def __init__(self, protocol: Protocol) -> None:
        self.peers = frozenset(p.id for p in protocol.peers)
        self.coordinator = protocol.marac.coordinator if protocol.marac is not None else None
        self.hub_id = protocol.protocol.hub_id
        #: the HPKE suite the protocol seals proofs to the hub with (``crypto``)
        self.suite = protocol.crypto.suite_for(PROOF_TYPE)
        self._pending: list[tuple[str, AuditRecord]] = []

    @classmethod
    def of(cls, protocol: Protocol) -> PeerProofs | None:
        """None for a protocol with no peer or no hub_id (nothing to prove to anyone)."""
        if not protocol.peers or protocol.protocol.hub_id is None:
            return None
        return cls(protocol)

    def note(self, records: Iterable[AuditRecord]) -> None:
        """Remember the hand-over records among those just written."""
        for r in records:
            if r.decision is not AuditDecision.DELIVERED or r.event_type in _NOT_HANDOVERS:
                continue
            if r.recipient in self.peers:
                self._pending.append((r.recipient, r))
            elif r.publisher in self.peers and r.recipient == self.coordinator:
                self._pending.append((r.publisher, r))

    @property
    def pending(self) -> int:
        """Hand-over records waiting for a checkpoint."""
        return len(self._pending)

    def bodies(
        self, log: Callable[[], tuple[AuditLog, AuditStore]]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(peer, proof id, body) for every pending record; the pending list is emptied.

        ``log`` gives a full (not heads-only) log to build proofs, asked for only when a
        hand-over is pending (the audit sink makes it at the first and keeps it).
        """
        if not self._pending or self.hub_id is None:
            return []
        pending, self._pending = self._pending, []
        audit_log, store = log()
        out = []
        for peer, record in pending:
            (entry,) = [
                e
                for e in entries_for(audit_log, store, record.record_id)
                if json.loads(e["record"])["record_id"] == record.record_id
            ]
            body = {
                "transfer_event_id": record.event_id,
                "sender": self.hub_id,
                "audit_record": record.record_id,
                **entry,
            }
            out.append((peer, proof_id(record.record_id), body))
        return out
