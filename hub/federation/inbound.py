"""A transfer from a peer hub, opened as an inbound event from that peer (issue 20).

The peer's router sealed its delivery to this hub (recipient: this hub's id in the peer's
protocol, ``protocol.hub_id``) and signed it with the peer hub's own key; ``hub federation
link`` carried it, unopened, to ``hub.in.<peer>`` here. ``open_transfer`` checks it the way
the router checks a party's event, with the peer's pinned keys (``hub.keys.peers``):

- the signature is by a key pinned for that peer (unknown, revoked or another party's key:
  refused with the envelope's own reasons);
- the payload is the minimised JSON the peer disclosed, of an event type this hub knows,
  with no field the schema does not define;
- every field it carries is one this hub's protocol accepts *from that peer*: the union of
  the ``fields`` of the rules naming the peer as a publisher of the type. A field beyond
  them refuses the whole transfer (quarantined, audited, the peer told why): it is never
  trimmed, because what the peer disclosed without a basis here is a matter for the two
  partnerships, not something to drop quietly.

The event then goes on as the peer's (``source`` ``/parties/<peer>``): this hub's rules
decide who receives it, exactly as for any publisher.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hub.envelope import crypto, wire
from hub.envelope.sealing import open_record
from hub.errors import ConfigError, EventError, KeyStoreError, UnknownKeyError
from hub.federation.proofs import (
    PROOF_TYPE,
    ProofError,
    pinned_log_key,
    verify_entry,
)
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeyStatus
from hub.keys.peers import PeerPins, PinnedDirectory
from hub.keys.store import KeyStore
from hub.models import EventAttributes, QuarantineReason
from hub.policies.model import Protocol
from hub.schemas import SchemaRegistry

__all__ = ["PEER_REFUSAL", "TransferRefusedError", "accepted_fields", "open_transfer", "refused_by"]

_HUB = "hub"
#: the notice a hub sends a publisher whose event it refused (``hub.agents.routing``)
PEER_REFUSAL = "uk.csp.hub.rejected.v1"


class TransferRefusedError(EventError):
    """A peer's transfer this hub will not take; ``reason`` is the quarantine reason."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(message)
        self.quarantine_reason = reason
        self.reason = reason.value


def accepted_fields(protocol: Protocol, *, peer: str, event_type: str) -> frozenset[str] | None:
    """Top-level fields ``protocol`` accepts from ``peer`` in ``event_type``.

    None when a rule accepts every field (``*``); empty when no rule names the peer as a
    publisher of the type (the engine then refuses the publisher, with its rules named).
    """
    party = protocol.party(peer)
    fields: set[str] = set()
    for rule in protocol.rules_for(event_type):
        named = peer in rule.publishers.parties or (
            party is not None and any(party.has_role(r) for r in rule.publishers.roles)
        )
        if not named:
            continue
        if "*" in rule.fields:
            return None
        fields.update(f.split(".", 1)[0] for f in rule.fields)
    return frozenset(fields)


def open_transfer(
    protocol: Protocol,
    *,
    peer: str,
    attrs: EventAttributes,
    headers: Mapping[str, str],
    key: bytes | None,
    value: bytes,
    store: KeyStore,
    registry: SchemaRegistry,
) -> tuple[EventAttributes, dict[str, Any]]:
    """Verify, decrypt and check a transfer from ``peer``: (its attributes as the peer's, data).

    Raises:
        TransferRefusedError: with the quarantine reason and what to do about it.
    """
    own_id = protocol.protocol.hub_id
    if own_id is None:
        raise TransferRefusedError(
            QuarantineReason.NOT_FOR_RECIPIENT,
            f"a transfer from peer {peer}: this hub's protocol names no hub_id, so it cannot "
            "be the recipient of a peer's transfer (set protocol.hub_id)",
        )
    if not isinstance(store, FileKeyStore):
        raise TransferRefusedError(
            QuarantineReason.UNKNOWN_KEY,
            f"peer {peer}: this hub's key store keeps no pinned peer keys",
        )
    pins = PeerPins(store.root).public(peer)
    if not pins:
        raise TransferRefusedError(
            QuarantineReason.UNKNOWN_KEY,
            f"peer {peer}: expected pinned keys, found none; run `hub keys import --peer {peer}` "
            "with the peer's `hub keys export --party hub`",
        )
    try:
        opened = open_record(
            headers,
            key=key,
            value=value,
            recipient=own_id,
            directory=PinnedDirectory(peer, pins),
            hpke_open=lambda kid, ct, info: _hub_open(store, kid, ct, info),
            expected_signer=peer,
        )
    except crypto.CryptoError as exc:
        raise TransferRefusedError(QuarantineReason(exc.reason), str(exc)) from exc
    if attrs.type == PEER_REFUSAL and attrs.party == _HUB:
        raise TransferRefusedError(
            QuarantineReason.POLICY_REJECTED, _refusal(peer, opened.plaintext)
        )
    if attrs.type not in registry:
        raise TransferRefusedError(
            QuarantineReason.UNKNOWN_TYPE, f"ce_type {attrs.type!r} has no schema in this hub"
        )
    if attrs.datacontenttype != wire.JSON:
        raise TransferRefusedError(
            QuarantineReason.BAD_ATTRIBUTE,
            f"content-type: expected {wire.JSON} (a hub's delivery), got {attrs.datacontenttype!r}",
        )
    try:
        data = json.loads(opened.plaintext)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransferRefusedError(
            QuarantineReason.MALFORMED_PAYLOAD, f"payload: expected a JSON object, got {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise TransferRefusedError(
            QuarantineReason.MALFORMED_PAYLOAD,
            f"payload: expected a JSON object, got {type(data).__name__}",
        )
    carried = {name for name, item in data.items() if item is not None}
    known = {path.split(".", 1)[0] for path in registry.field_paths(attrs.type)}
    unknown = sorted(carried - known)
    if unknown:
        raise TransferRefusedError(
            QuarantineReason.SCHEMA_INVALID,
            f"fields {', '.join(unknown)}: expected only fields of {attrs.type}",
        )
    accepted = accepted_fields(protocol, peer=peer, event_type=attrs.type)
    if accepted:  # None: every field; empty: no rule, the engine refuses the publisher
        refused = sorted(carried - accepted)
        if refused:
            raise TransferRefusedError(
                QuarantineReason.POLICY_REJECTED,
                f"fields {', '.join(refused)} from peer {peer}: this hub's protocol accepts only "
                f"{', '.join(sorted(accepted))} in {attrs.type} from it; the transfer is refused "
                "whole, not trimmed: resend it without them, or agree a rule that accepts them",
            )
    if attrs.type == PROOF_TYPE:
        _verify_proof(store, peer, data)
    as_peer = attrs.model_copy(update={"source": wire.source_for(peer)})
    return as_peer, data


def _verify_proof(store: FileKeyStore, peer: str, data: dict[str, Any]) -> None:
    """Verify a peer's proof of its own log with its pinned log key (nothing is written).

    Kept only once the router accepted it: the federation process's effect ``ProofKept``,
    applied by the worker with the event's other effects (``hub.processes.federation``).

    The peer's hub signed the message; the proof itself needs only the log key: its
    checkpoint's signature, and the inclusion of the record, exactly its leaf's bytes, in
    the tree that checkpoint commits to. The record must be the one the proof names.
    """
    try:
        verifier = pinned_log_key(store.root, peer)
    except ConfigError as exc:
        raise TransferRefusedError(QuarantineReason.UNKNOWN_KEY, str(exc)) from exc
    try:
        proven = verify_entry(data, verifier)
    except ProofError as exc:
        raise TransferRefusedError(QuarantineReason.BAD_SIGNATURE, str(exc)) from exc
    record = proven.record
    if (record.record_id, record.event_id) != (data["audit_record"], data["transfer_event_id"]):
        raise TransferRefusedError(
            QuarantineReason.POLICY_REJECTED,
            f"proof from peer {peer}: expected record {data['audit_record']} of event "
            f"{data['transfer_event_id']}, got record {record.record_id} of event "
            f"{record.event_id}",
        )


def _hub_open(store: KeyStore, kid: str, ciphertext: bytes, info: bytes) -> bytes:
    """Open a data key sealed to this hub's own key ``kid`` (never a local party's)."""
    try:
        record = store.by_key_id(kid)
    except UnknownKeyError:
        raise KeyError(kid) from None
    if record.party != _HUB or record.encryption_key(kid) is None:
        raise KeyError(kid)
    if record.status is KeyStatus.REVOKED:
        raise crypto.CryptoError(f"sealed to revoked key {kid}", "revoked_key")
    try:
        return store.hpke_open(kid, ciphertext, info=info)
    except KeyStoreError as exc:
        raise crypto.CryptoError(str(exc), "bad_ciphertext") from exc


def refused_by(peer: str, event_id: str) -> str:
    """How the audit reason of a peer's refusal names the event it refused."""
    return f"peer {peer} refused event {event_id}"


def _refusal(peer: str, plaintext: bytes) -> str:
    """The audit reason for a peer's refusal notice: what it refused and why, in its words.

    The notice has no schema to route it by; it is kept on hub.quarantine and audited here,
    so the sender's log says why its transfer was refused.
    """
    try:
        body = json.loads(plaintext)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return f"peer {peer} sent a refusal notice this hub cannot read"
    return (
        f"{refused_by(peer, str(body.get('rejected_event_id')))} "
        f"({body.get('reason')}): {body.get('detail')}"
    )
