"""Pydantic models at the hub's boundaries: events, decisions, audit records, deliveries.

These are the contracts between the packages: the router turns an ``InboundEvent`` into a
``Decision`` (policy engine), a set of deliveries and one ``AuditRecord`` per decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.canonical import update_length_prefixed

__all__ = [
    "ACK_TYPE",
    "PARTY_ID_PATTERN",
    "AuditBatch",
    "AuditDecision",
    "AuditRecord",
    "Decision",
    "Delivery",
    "EventAttributes",
    "InboundEvent",
    "Origin",
    "QuarantineReason",
    "RecipientDecision",
    "consumed_digest",
    "event_key",
    "record_id_for",
    "split_event_key",
]

#: party ids: lowercase words joined by '-', departments after a '.'
PARTY_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)*$"


class QuarantineReason(StrEnum):
    """Machine-readable reasons an inbound message is quarantined."""

    MISSING_ATTRIBUTE = "missing_attribute"
    BAD_ATTRIBUTE = "bad_attribute"
    UNKNOWN_TYPE = "unknown_type"
    MALFORMED_PAYLOAD = "malformed_payload"
    SCHEMA_INVALID = "schema_invalid"
    SPOOFED_SOURCE = "spoofed_source"
    UNKNOWN_PARTY = "unknown_party"
    OVERSIZED = "oversized"
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    PUBLISHER_NOT_PERMITTED = "publisher_not_permitted"
    POLICY_REJECTED = "policy_rejected"
    INTERNAL_ERROR = "internal_error"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    WRONG_SIGNER = "wrong_signer"
    NOT_FOR_RECIPIENT = "not_for_recipient"
    BAD_CIPHERTEXT = "bad_ciphertext"
    BAD_ENVELOPE = "bad_envelope"
    #: an acknowledgement from a party the acknowledged event was never delivered to
    NOT_A_RECIPIENT = "not_a_recipient"
    #: the Kafka client could not decode the record (a header name not UTF-8, a corrupt
    #: batch): ``hub.broker.decode_guard`` handed it on marked instead of crashing the worker
    UNDECODABLE_RECORD = "undecodable_record"


class AuditDecision(StrEnum):
    """What happened to an event with respect to one party (or to the event as a whole)."""

    DELIVERED = "delivered"
    WITHHELD = "withheld"
    REJECTED = "rejected"
    ACKNOWLEDGED = "acknowledged"
    #: an IG officer withheld a delivery from a subject access response (DPA 2018 exemption)
    EXEMPTED = "exempted"
    SHREDDED = "shredded"
    HOLD_PLACED = "hold_placed"
    HOLD_LIFTED = "hold_lifted"
    #: records before a size were pruned under the protocol's audit retention (their hashes kept)
    PRUNED = "pruned"
    #: a person consulted personal data in the console (DPA 2018 s62: who, what, why, when)
    CONSULTED = "consulted"
    #: the party's webhook dispatcher POSTed a delivery (one record per attempt)
    WEBHOOK_ATTEMPTED = "webhook_attempted"
    #: the endpoint answered 2xx: the party has the delivery (and acknowledges it)
    WEBHOOK_DELIVERED = "webhook_delivered"
    #: the retry limit was reached: the delivery is on hub.deadletter.<party>
    WEBHOOK_FAILED = "webhook_failed"


class Origin(BaseModel):
    """Where the hub read a message: Kafka coordinates, used for idempotent reprocessing."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class EventAttributes(BaseModel):
    """CloudEvents 1.0 context attributes as carried in Kafka binary mode (``ce_*`` headers)."""

    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(pattern=r"^/parties/[a-z0-9.\-]+$")
    type: str = Field(min_length=1, max_length=256)
    time: datetime
    subject: str | None = Field(default=None, max_length=256)
    datacontenttype: str = "application/avro"
    dataschema: str | None = None

    @property
    def party(self) -> str:
        """The publishing party named by ``source``."""
        return self.source.removeprefix("/parties/")


class InboundEvent(BaseModel):
    """A validated event read from ``hub.in.<party>``: attributes, decoded payload, origin."""

    model_config = ConfigDict(frozen=True)

    attributes: EventAttributes
    key: str | None
    data: dict[str, Any]
    origin: Origin | None = None
    size: int = 0


class RecipientDecision(BaseModel):
    """The protocol's answer for one party: deliver these fields under this rule, or withhold."""

    model_config = ConfigDict(frozen=True)

    party: str
    outcome: Literal["deliver", "withhold"]
    rule_id: str | None = None
    reason: str
    fields: tuple[str, ...] = ()
    lawful_basis: str | None = None
    condition: str | None = None
    purpose: str | None = None
    retention: str | None = None
    #: the legal gateway the rule relies on, as the protocol cites it (``Rule.gateway``)
    gateway: str | None = None


class Decision(BaseModel):
    """The engine's verdict on one event: per-party outcomes, or a rejection of the event."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    event_type: str
    publisher: str
    protocol_hash: str
    rejected: bool = False
    reject_reason: str | None = None
    reject_rule: str | None = None
    recipients: tuple[RecipientDecision, ...] = ()
    #: agreements past their review date that withheld this event from someone
    suspended_agreements: tuple[str, ...] = ()

    @property
    def deliveries(self) -> tuple[RecipientDecision, ...]:
        """The parties that receive the event."""
        return tuple(r for r in self.recipients if r.outcome == "deliver")


def record_id_for(
    event_id: str, party: str | None, decision: str, *, source: str | None = None
) -> str:
    """Deterministic audit record id, so a reprocessed event yields the same records.

    At-least-once processing may write a record twice after a crash; the store keeps one.

    An event is identified by its source and id (CloudEvents 1.0): two parties may publish
    the same id, and their records must not share an id, or the store would keep the first
    party's record and silently drop the second's. The router passes ``source`` (the
    publishing party) for every record about a routed event. Without it the material is what
    it always was, so ids of records about things that are not a party's event (prunes,
    shreds, consultations, exemptions) and of records already stored do not change.
    """
    prefix = f"{source}\x00" if source is not None else ""
    material = f"{prefix}{event_id}\x00{party or '-'}\x00{decision}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def consumed_digest(key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]) -> str:
    """SHA-256 of a consumed record's key, value and headers, each length-prefixed.

    Part of a refusal's record id (the router's, the audit sink's): the origin alone (topic,
    partition, offset) names two records when a broker's offsets start again (the embedded
    broker restarted empty, a topic re-created), and the store keeps one record per id, so
    the second refusal would have no audit record of its own. The same record consumed again
    gets the same id.
    """
    digest = hashlib.sha256()
    parts = [b"" if key is None else key, value]
    for name, text in headers:
        parts += [name.encode("utf-8", "surrogatepass"), text]
    update_length_prefixed(digest, parts)
    digest.update(b"\x00" if key is None else b"\x01")
    return digest.hexdigest()


def event_key(source: str, event_id: str) -> str:
    """One string naming an event by its identity, ``source`` and ``id`` (CloudEvents 1.0).

    ``"<source> <id>"``: a ``ce_source`` never holds a space (``EventAttributes.source``
    pattern), so the first space splits it back (``split_event_key``) whatever the id holds.
    The seen-event lookup takes this one string, so its callers pass a single argument.
    """
    return f"{source} {event_id}"


def split_event_key(key: str) -> tuple[str | None, str]:
    """``(source, id)`` of an ``event_key``; ``(None, key)`` for a bare id (no source)."""
    source, sep, event_id = key.partition(" ")
    if sep and source.startswith("/parties/"):
        return source, event_id
    return None, key


class AuditRecord(BaseModel):
    """One decision about one event, as kept in the audit store.

    Holds ids, parties, rule, protocol hash, lawful basis, disclosed field names and the
    SHA-256 of the exact bytes delivered; never the payload, and subjects only as keyed
    pseudonyms (HMAC) so a subject access request can still find them.
    """

    model_config = ConfigDict(frozen=True)

    record_id: str
    time: datetime
    event_id: str
    event_type: str | None = None
    event_time: datetime | None = None
    publisher: str | None = None
    recipient: str | None = None
    decision: AuditDecision
    rule: str | None = None
    reason: str
    lawful_basis: str | None = None
    condition: str | None = None
    purpose: str | None = None
    gateway: str | None = Field(
        default=None,
        description="the legal gateway the rule relies on, as the protocol cites it (e.g. "
        "'Crime and Disorder Act 1998 s115'); a null gateway is left out of the canonical "
        "form, so records from before this field keep their bytes (hub.audit.packing)",
    )
    protocol_hash: str | None = None
    fields: tuple[str, ...] = ()
    payload_sha256: str | None = None
    case_pseudonym: str | None = None
    subject_pseudonyms: tuple[str, ...] = ()
    origin: str | None = None
    ack_event_id: str | None = Field(
        default=None,
        description="for acknowledgements: the id of the acknowledgement event itself "
        "(event_id is the event acknowledged, so a case chronology finds it)",
    )


class AuditBatch(BaseModel):
    """Every audit record of one routed event, as one message on ``hub.audit``.

    One message per event rather than per record: the router's produce calls per event drop
    from about a dozen to a handful, and an event's records land in the store together.
    The sink also accepts a lone ``AuditRecord`` (the webhook dispatcher sends those).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: tuple[AuditRecord, ...]


#: a recipient's receipt for a delivery (``HubClient.acknowledge``), audited as acknowledged
ACK_TYPE = "uk.csp.delivery.ack.v1"


class Delivery(BaseModel):
    """What a recipient sees: one event from ``hub.out.<party>``, minimised for that party."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None
    recipient: str
    rule: str | None
    protocol_hash: str | None
    data: dict[str, Any]
    key: str | None = None

    @property
    def from_hub(self) -> bool:
        """A notice the hub itself sent (refusal, suspension, checkpoint), not a disclosure."""
        return self.source == "/parties/hub"

    @property
    def wants_ack(self) -> bool:
        """Whether the recipient acknowledges it: a party's disclosure, not a hub notice.

        Nor another party's receipt: receipts are never acknowledged (no endless exchange).
        The SDK's consumers, ``hub consume --ack``, the demo and the webhook dispatcher ask.
        """
        return not self.from_hub and self.type != ACK_TYPE
