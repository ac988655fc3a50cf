"""Routing as a pure function: one inbound Kafka record in, messages and audit records out.

The faust agents (``hub.agents.app``) are thin glue around ``Router.route``: validate,
decide by the protocol, minimise per recipient, build deliveries, and one audit record per
decision. Everything here is deterministic for a given record (ids are derived, not random),
so an event reprocessed after a crash yields the same deliveries and the same audit record
ids, and consumers and the audit store recognise the repeat.

Encryption and signatures (next issue) slot in at two points: ``_open`` (verify and decrypt
the inbound payload) and ``_seal`` (encrypt and sign each recipient's delivery).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hub.agents.recent import Recent
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.subjects import case_ref, subject_refs
from hub.broker import topics
from hub.canonical import update_length_prefixed
from hub.envelope import wire
from hub.envelope.crypto import CryptoError
from hub.envelope.escrow import reescrow
from hub.envelope.party import PartyEnvelope
from hub.errors import EventError, KeyStoreError
from hub.federation.inbound import TransferRefusedError, open_transfer
from hub.federation.ownership import (
    OWNERSHIP_TYPE,
    OwnershipRegister,
    owned_from,
    withdraw_message,
)
from hub.federation.receipts import (
    RECEIPT_TYPE,
    acknowledged_bodies,
    receipt_body,
    receipt_id,
)
from hub.keys.cases import LostKeys
from hub.log import get_logger
from hub.models import (
    ACK_TYPE,
    AuditDecision,
    AuditRecord,
    Decision,
    EventAttributes,
    InboundEvent,
    Origin,
    QuarantineReason,
    RecipientDecision,
    consumed_digest,
    event_key,
    record_id_for,
)
from hub.policies.engine import corrections_of, evaluate, minimise
from hub.policies.model import Protocol
from hub.processes.acks import acknowledgement_records
from hub.processes.base import (
    Effect,
    EventContext,
    Process,
    ProcessRegistry,
    Refusal,
    Routed,
    Stores,
)
from hub.processes.registry import default_registry
from hub.schemas import SchemaRegistry, to_jsonable

__all__ = [
    "ACK_TYPE",
    "MAX_KEY_BYTES",
    "QUARANTINE_MAX_BYTES",
    "REJECTED_TYPE",
    "SUSPENDED_TYPE",
    "DeliveredLookup",
    "Escrow",
    "RouteResult",
    "Router",
    "SeenLookup",
]

REJECTED_TYPE = "uk.csp.hub.rejected.v1"
#: told to a publisher when a rule it relied on is suspended (agreement past its review date)
SUSPENDED_TYPE = "uk.csp.hub.suspended.v1"
_log = get_logger("router")
_NOTICE_NS = uuid.UUID("6f1c3c9e-8e4b-4b7e-9d8a-2f0a1c5e7b11")

#: case ref -> a sealer for that case, or None when the case has no secret (shredded); the
#: sealer maps (case key, data key id) to the escrow header value (the case key sealed under
#: the hub's per-case secret)
Escrow = Callable[[str], Callable[[bytes, str], str] | None]
#: ``CaseKeys.deferred``: new case keys written once, when a batch's routing ends; yields the
#: keys another worker (or a shred) got to first
NewKeys = Callable[[], AbstractContextManager[LostKeys]]


@contextmanager
def _keys_at_once() -> Iterator[LostKeys]:
    """No escrow, or keys written as they are made: nothing is ever lost at a batch's end."""
    yield LostKeys()


#: event key (``hub.models.event_key``: source and id) -> origin string of the record that
#: first carried that event, or None if never seen (``SeenEvents.first``)
SeenLookup = Callable[[str], str | None]

#: (event id, party) -> (publisher, event type) of each event with that id the audit store
#: says was delivered to the party (``hub.audit.lookups.delivered_to``)
DeliveredLookup = Callable[[str, str], Collection[tuple[str, str | None]]]

#: case ref -> parties the audit log says received an earlier event of the case
PreviousLookup = Callable[[str], Collection[str]]

#: cases and events whose deliveries this router keeps while the audit store has not
#: stored them (``hub.agents.recent``): the bound while the store confirms nothing, far more
#: than the router decides before delivery pauses (``HUB_AUDIT_OUTAGE_LIMIT``)
_RECENT_CASES = 10_000
_RECENT_DELIVERIES = 10_000

#: the largest record the router puts on hub.quarantine by default: key, value and headers,
#: with the record batch's overhead (``_record_size``). faust's producer refuses a request
#: above 1,000,000 bytes (its ``producer_max_request_size``; aiokafka's own default is
#: 1,048,576), and a record the producer refuses would stop the worker
QUARANTINE_MAX_BYTES = 900_000
#: the original headers of a record too large to quarantine whole are kept up to this share
#: of the limit; beyond it they are replaced by their digest
_HEADER_SHARE = 4
_KEPT_KEY_BYTES = 1024
#: the longest Kafka key the router accepts: the key is the case or subject reference
MAX_KEY_BYTES = 1024


@dataclass
class RouteResult:
    """What routing one record produced. Audit first, then messages: nothing unaudited."""

    event_id: str
    audit: list[AuditRecord] = field(default_factory=list)
    messages: list[wire.WireMessage] = field(default_factory=list)
    quarantined: QuarantineReason | None = None
    remember: bool = False
    #: register updates the processes asked for (``hub.processes``): the worker applies
    #: them right after ``route`` returns, before the next event (``apply_effects``)
    effects: list[Effect] = field(default_factory=list)
    delivered: int = 0
    withheld: int = 0

    @property
    def recipients(self) -> frozenset[str]:
        """The parties this event is delivered to: ``SeenEvents.remember(recipients=...)``."""
        return frozenset(
            r.recipient
            for r in self.audit
            if r.decision is AuditDecision.DELIVERED and r.recipient is not None
        )

    @property
    def outcome(self) -> str:
        """Summary word for logs and counters."""
        return f"quarantined:{self.quarantined.value}" if self.quarantined else "routed"


#: a refusal (the router's own, or a process's check): quarantined, audited, the publisher
#: told; its detail is cut to ``hub.processes.base.MAX_DETAIL`` characters (it goes into a
#: header, the audit record and the notice, and may quote what the record carried)
_Reject = Refusal


class Router:
    """Validate, decide, minimise and deliver one record at a time."""

    def __init__(
        self,
        protocol: Protocol,
        *,
        registry: SchemaRegistry,
        pseudonymiser: Pseudonymiser,
        envelope: PartyEnvelope,
        max_event_bytes: int,
        escrow: Escrow | None = None,
        new_keys: NewKeys = _keys_at_once,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        register: object | None = None,
        previous: PreviousLookup | None = None,
        bans: object | None = None,
        delivered: DeliveredLookup | None = None,
        quarantine_max_bytes: int = QUARANTINE_MAX_BYTES,
        processes: ProcessRegistry | None = None,
        stores: Stores | None = None,
    ) -> None:
        self.protocol = protocol
        # The partnership processes (``hub.processes``) check events of their types before
        # the decision and say what to record after it. Their registers are read here, never
        # written: ``register`` and ``bans`` (the flag and ban registers) are shorthand for
        # ``stores`` holding them.
        self.processes = processes if processes is not None else default_registry()
        self.stores = (
            stores if stores is not None else Stores(s for s in (register, bans) if s is not None)
        )
        self.previous = previous
        # deliveries by case routed by this process: the audit store may not have them yet
        # (kept until it does: ``forget_stored``)
        self._recent: Recent[frozenset[str]] = Recent(_RECENT_CASES)
        #: the route loop's current batch, stamped on what the router keeps (``forget_stored``)
        self.batch = 0
        # Who may acknowledge what. The audit sink stores a delivery a little after the router
        # decided it, and a recipient may acknowledge faster than that: this router's own
        # recent deliveries (event id -> (publisher, type, recipients)) answer first, then
        # ``delivered``. With several workers an acknowledgement is routed by whichever worker
        # owns its partition, often not the one that routed the event: the worker's lookup
        # (``hub.agents.seen.delivered_lookup``) asks the seen-event store, shared by every
        # worker and written with the recipients when the event is claimed, before any
        # delivery is produced, and then the audit store. Where the claim does not pass the
        # recipients, only the audit store answers for other workers' events, and an
        # acknowledgement that outruns the audit sink is quarantined as not_a_recipient (kept
        # whole on hub.quarantine, and the party told), never audited unproven.
        self.delivered = delivered
        self._recent_deliveries: Recent[tuple[tuple[str, str, frozenset[str]], ...]] = Recent(
            _RECENT_DELIVERIES
        )
        self.quarantine_max_bytes = quarantine_max_bytes
        self.registry = registry
        self.pseudonymiser = pseudonymiser
        self.envelope = envelope
        self.max_event_bytes = max_event_bytes
        self.escrow = escrow
        # the escrow's keyring batching its new case keys (the route loop's ``route_events``)
        self.new_keys = new_keys
        self.clock = clock

    # -- entry point -------------------------------------------------------------------------

    def route(
        self,
        *,
        origin: Origin,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        seen: SeenLookup,
    ) -> RouteResult:
        """Route one inbound record. Never raises for bad input: it quarantines it."""
        value = value or b""
        attrs: EventAttributes | None = None
        try:
            attrs, decoded = self._parse(headers)
            self._validate(origin, attrs, key, value)
            event = self._open(attrs, decoded, origin=origin, key=key, value=value)
            # an event is its source and id (CloudEvents 1.0): the same id from another party
            # is another event, not a duplicate. The opened event's source, as the route loop
            # claims it (the topic's owner): a peer's transfer carries the original
            # publisher's ce_source but is the peer's event here, so a link repeat is found
            first = seen(event_key(event.attributes.source, attrs.id))
            if first is not None and first != str(origin):
                if self.protocol.is_peer(topics.owner_of(origin.topic) or ""):
                    # a peer link's at-least-once repeat, verified as the peer's: routed once
                    _log.info("peer_repeat_skipped", origin=str(origin), event_id=attrs.id)
                    return RouteResult(event_id=attrs.id)
                raise _Reject(
                    QuarantineReason.DUPLICATE_EVENT_ID,
                    f"event id {attrs.id} from {attrs.source} was already accepted (at {first})",
                )
            if attrs.type == ACK_TYPE:
                result = self._acknowledge(event)
                result.messages.extend(self._acknowledged_receipts(event, result))
            else:
                result = self._decide(event)
                if self.protocol.is_peer(event.attributes.party):
                    result.messages.extend(self._receipt(event, result))
            result.remember = True
            return result
        except _Reject as rej:
            return self._quarantine(origin, key, value, headers, attrs, rej)
        except Exception as exc:  # a bug must not lose the event or stop the stream
            _log.exception("route_failed", origin=str(origin), error=type(exc).__name__)
            internal = _Reject(
                QuarantineReason.INTERNAL_ERROR,
                f"the hub could not route this record ({type(exc).__name__}); "
                "it is kept on hub.quarantine for replay",
            )
            return self._quarantine(origin, key, value, headers, attrs, internal)

    def unapplied(
        self,
        *,
        origin: Origin,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        error: BaseException,
    ) -> RouteResult:
        """A routed record whose effects could not be written: quarantined, as for a bug.

        The worker applies ``RouteResult.effects`` after ``route``; when that fails (a
        register that cannot be written) the record is kept on hub.quarantine for replay,
        audited, and its deliveries dropped, exactly as when the write failed inside routing.
        """
        _log.error("effects_failed", origin=str(origin), error=type(error).__name__)
        try:
            attrs: EventAttributes | None = self._parse(headers)[0]
        except _Reject:
            attrs = None
        internal = _Reject(
            QuarantineReason.INTERNAL_ERROR,
            f"the hub could not route this record ({type(error).__name__}); "
            "it is kept on hub.quarantine for replay",
        )
        return self._quarantine(origin, key, value or b"", headers, attrs, internal)

    # -- validation --------------------------------------------------------------------------

    @staticmethod
    def _parse(
        headers: Sequence[tuple[str, bytes | None]] | None,
    ) -> tuple[EventAttributes, dict[str, str]]:
        try:
            decoded = wire.decode_headers(headers)
            return wire.attributes_from_headers(decoded), decoded
        except wire.HeaderError as exc:
            raise _Reject(QuarantineReason(exc.reason), str(exc)) from exc

    def _validate(
        self, origin: Origin, attrs: EventAttributes, key: bytes | None, value: bytes
    ) -> None:
        owner = topics.owner_of(origin.topic)
        if owner is None or self.protocol.party(owner) is None:
            raise _Reject(
                QuarantineReason.UNKNOWN_PARTY,
                f"topic {origin.topic} belongs to no party of the protocol",
            )
        if len(value) > self.max_event_bytes:
            raise _Reject(
                QuarantineReason.OVERSIZED,
                f"payload is {len(value)} bytes: expected at most {self.max_event_bytes}",
            )
        # every delivery carries the key: one near the broker's limit would make each of them
        # too large to produce, and the refused produce would stop the worker
        if key is not None and len(key) > MAX_KEY_BYTES:
            raise _Reject(
                QuarantineReason.OVERSIZED,
                f"record key is {len(key)} bytes: expected at most {MAX_KEY_BYTES} "
                "(a case or subject reference)",
            )
        if self.protocol.is_peer(owner):
            return  # a peer hub's transfer: hub.federation.inbound checks the rest in _open
        if attrs.party != owner:
            raise _Reject(
                QuarantineReason.SPOOFED_SOURCE,
                f"ce_source {attrs.source} on {origin.topic}: expected {wire.source_for(owner)}",
            )
        if attrs.type not in self.registry:
            raise _Reject(
                QuarantineReason.UNKNOWN_TYPE, f"ce_type {attrs.type!r} has no schema in this hub"
            )
        if attrs.datacontenttype != wire.AVRO:
            raise _Reject(
                QuarantineReason.BAD_ATTRIBUTE,
                f"content-type: expected {wire.AVRO}, got {attrs.datacontenttype!r}",
            )

    def _open(
        self,
        attrs: EventAttributes,
        headers: dict[str, str],
        *,
        origin: Origin,
        key: bytes | None,
        value: bytes,
    ) -> InboundEvent:
        """Verify the publisher's signature, decrypt, decode the Avro payload."""
        owner = topics.owner_of(origin.topic)
        if owner is not None and self.protocol.is_peer(owner):
            return self._open_transfer(owner, attrs, headers, origin=origin, key=key, value=value)
        try:
            opened = self.envelope.open(headers, key=key, value=value, expected_signer=attrs.party)
        except CryptoError as exc:
            raise _Reject(QuarantineReason(exc.reason), str(exc)) from exc
        try:
            data = self.registry.decode(attrs.type, opened.plaintext)
        except EventError as exc:
            raise _Reject(QuarantineReason.MALFORMED_PAYLOAD, str(exc)) from exc
        try:
            key_text = key.decode() if key is not None else None
        except UnicodeDecodeError as exc:
            raise _Reject(QuarantineReason.BAD_ATTRIBUTE, "record key is not UTF-8") from exc
        return InboundEvent(
            attributes=attrs,
            key=key_text,
            data=to_jsonable(data),
            origin=origin,
            size=len(value),
        )

    def _open_transfer(
        self,
        peer: str,
        attrs: EventAttributes,
        headers: dict[str, str],
        *,
        origin: Origin,
        key: bytes | None,
        value: bytes,
    ) -> InboundEvent:
        """A peer hub's transfer, as an inbound event from the peer (``hub.federation``)."""
        try:
            as_peer, data = open_transfer(
                self.protocol,
                peer=peer,
                attrs=attrs,
                headers=headers,
                key=key,
                value=value,
                store=self.envelope.store,
                registry=self.registry,
            )
        except TransferRefusedError as exc:
            raise _Reject(exc.quarantine_reason, str(exc)) from exc
        try:
            key_text = key.decode() if key is not None else None
        except UnicodeDecodeError as exc:
            raise _Reject(QuarantineReason.BAD_ATTRIBUTE, "record key is not UTF-8") from exc
        return InboundEvent(
            attributes=as_peer, key=key_text, data=data, origin=origin, size=len(value)
        )

    def _receipt(self, event: InboundEvent, result: RouteResult) -> list[wire.WireMessage]:
        """A peer's transfer, routed: its receipt back to the peer (``hub.federation``)."""
        attrs = event.attributes
        if attrs.type == RECEIPT_TYPE:
            return []  # a receipt is not receipted
        if attrs.type == OWNERSHIP_TYPE:
            # the peer took the case: this hub tells the case's holders to withdraw the flag
            if not any(r.decision is AuditDecision.DELIVERED for r in result.audit):
                return []
            owned = owned_from(attrs.id, event.data, publisher_peer=attrs.party)
            return [withdraw_message(self.envelope, self.registry, owned=owned, now=self.clock())]
        body = receipt_body(
            self.protocol,
            transfer_event_id=attrs.id,
            data=event.data,
            audit=result.audit,
            now=self.clock(),
        )
        if body is None:
            return []
        message = self._notice_message(attrs.party, receipt_id(attrs.id), RECEIPT_TYPE, body)
        return [message] if message is not None else []

    def _ownership_withheld(
        self, event: InboundEvent, result: RouteResult, case: str | None
    ) -> None:
        """A case a peer took ownership of: later events no longer reach that peer.

        Each delivery to it is withheld instead, audited with why (``hub.federation``).
        ``case`` is the event's ``case_ref``.
        """
        to_peers = any(
            r.decision is AuditDecision.DELIVERED and self.protocol.is_peer(r.recipient or "")
            for r in result.audit
        )
        register = self.stores.get(OwnershipRegister) if to_peers else None
        owned = register.owner(case) if register is not None and case is not None else None
        if owned is None or event.attributes.type == OWNERSHIP_TYPE:
            return
        reason = (
            f"peer {owned.peer} took ownership of case {owned.case_ref} on "
            f"{owned.taken_on.isoformat()} (event {owned.event_id}): later events no longer "
            "follow it there"
        )
        audit: list[AuditRecord] = []
        for record in result.audit:
            if record.recipient == owned.peer and record.decision is AuditDecision.DELIVERED:
                record = record.model_copy(
                    update={
                        "decision": AuditDecision.WITHHELD,
                        "reason": reason,
                        "fields": (),
                        "payload_sha256": None,
                    }
                )
                result.delivered -= 1
                result.withheld += 1
            audit.append(record)
        result.audit = audit
        result.messages = [m for m in result.messages if m.topic != topics.outbound(owned.peer)]

    def _acknowledged_receipts(
        self, event: InboundEvent, result: RouteResult
    ) -> list[wire.WireMessage]:
        """The coordinator acknowledged a peer's transfer: the peer is told (its receipt)."""
        out = []
        for peer, body in acknowledged_bodies(
            self.protocol, case_ref=event.key, audit=result.audit, now=self.clock()
        ):
            notice_id = receipt_id(body["transfer_event_id"], "acknowledged")
            message = self._notice_message(peer, notice_id, RECEIPT_TYPE, body)
            if message is not None:
                out.append(message)
        return out

    # -- decisions ---------------------------------------------------------------------------

    def _decide(self, event: InboundEvent) -> RouteResult:
        attrs = event.attributes
        now = self.clock()
        case = case_ref(attrs.type, event.data)
        # the processes owning this type (``hub.processes``): their checks refuse (raising a
        # Refusal) or return marks for every audit record and what their record step needs
        owners = self.processes.for_type(attrs.type)
        ctx: EventContext | None = None
        marks: tuple[str, ...] = ()
        carried: list[object] = []
        if owners:
            ctx = EventContext(
                event=event,
                case=case,
                now=now,
                protocol=self.protocol,
                _holders=partial(self._holders, case),
                _subject=partial(self._subject, event),
            )
            for process in owners:
                checked = process.check(ctx, self.stores)
                if checked is None:
                    carried.append(None)
                    continue
                marks += checked.marks
                carried.append(checked.carry)
        decision = evaluate(
            self.protocol,
            event_id=attrs.id,
            event_type=attrs.type,
            publisher=attrs.party,
            data=event.data,
            today=now.date(),
            previous=self._previous(attrs.type, case, ctx, owners),
        )
        if decision.rejected:
            reason = (
                QuarantineReason.POLICY_REJECTED
                if decision.reject_rule
                else QuarantineReason.PUBLISHER_NOT_PERMITTED
            )
            raise _Reject(reason, decision.reject_reason or reason.value)
        decision = _marked(decision, marks)
        result = RouteResult(event_id=attrs.id)
        records = _Records(self._common(event, decision, case))
        shared = self._shared(event, decision, escrow=self._case_escrow(case))
        for outcome in decision.recipients:
            if outcome.outcome == "deliver":
                if "*" in outcome.fields:  # the audit names each field disclosed, not "*"
                    outcome = outcome.model_copy(update={"fields": tuple(sorted(event.data))})
                try:
                    message, digest = self._deliver(shared, outcome)
                except KeyStoreError as exc:  # no usable key: withhold, never send in clear
                    withheld = outcome.model_copy(
                        update={
                            "outcome": "withhold",
                            "fields": (),
                            "reason": f"rule {outcome.rule_id} permits it, but {exc}",
                        }
                    )
                    result.audit.append(records.of(withheld, AuditDecision.WITHHELD))
                    result.withheld += 1
                    continue
                size = _record_size(message.key, message.value, message.headers)
                if size > self.quarantine_max_bytes:
                    # HUB_MAX_EVENT_BYTES may be set above what a delivery can carry (the
                    # minimised JSON can be larger than the Avro): the producer would refuse
                    # it and stop the worker, so it is withheld, with why
                    withheld = outcome.model_copy(
                        update={
                            "outcome": "withhold",
                            "fields": (),
                            "reason": f"rule {outcome.rule_id} permits it, but the sealed "
                            f"delivery is {size} bytes: over the hub's record limit of "
                            f"{self.quarantine_max_bytes}",
                        }
                    )
                    result.audit.append(records.of(withheld, AuditDecision.WITHHELD))
                    result.withheld += 1
                    continue
                result.messages.append(message)
                result.audit.append(
                    records.of(outcome, AuditDecision.DELIVERED, payload_sha256=digest)
                )
                result.delivered += 1
            else:
                result.audit.append(records.of(outcome, AuditDecision.WITHHELD))
                result.withheld += 1
        if decision.suspended_agreements:
            result.messages.extend(self._suspension_notice(event, decision))
        # before anything remembers who received it: a peer that took the case gets nothing
        self._ownership_withheld(event, result, case)
        delivered = {
            r.recipient
            for r in result.audit
            if r.decision == AuditDecision.DELIVERED and r.recipient is not None
        }
        self._remember_delivered(attrs.id, attrs.party, attrs.type, delivered)
        if case is not None:
            self._remember(case, delivered)
        if ctx is not None:  # what to record, as effects: the worker writes them
            routed = Routed(decision=decision, delivered=frozenset(delivered))
            for process, carry in zip(owners, carried, strict=True):
                result.effects.extend(process.record(ctx, routed, carry, self.stores))
        return result

    # -- workflows ---------------------------------------------------------------------------

    def _previous(
        self,
        event_type: str,
        case: str | None,
        ctx: EventContext | None,
        owners: Sequence[Process],
    ) -> Collection[str]:
        """Earlier recipients of the case, when a correction (Art 19) covers this type."""
        if case is None or not corrections_of(self.protocol, event_type):
            return ()
        found = self._holders(case)
        if ctx is not None:  # e.g. the member that published a ban holds it too
            for process in owners:
                found.update(process.also_holding(ctx, self.stores))
        return found

    def _holders(self, case: str | None) -> set[str]:
        """Parties that received an earlier event of the case: this router's, the audit's."""
        if case is None:
            return set()
        found = set(self._recent.get(case) or ())
        if self.previous is not None:
            found |= set(self.previous(case))
        return found

    def _remember(self, case: str, parties: set[str]) -> None:
        if not parties:
            return
        self._recent.update(case, self.batch, lambda held: (held or frozenset()) | parties)

    def _remember_delivered(
        self, event_id: str, publisher: str, event_type: str, parties: set[str]
    ) -> None:
        """Keep who received this event, for its acknowledgements (bounded, oldest out)."""
        if not parties:
            return
        entry = (publisher, event_type, frozenset(parties))

        def add(held: tuple[tuple[str, str, frozenset[str]], ...] | None) -> tuple[Any, ...]:
            # a reprocess: the same again, in place of the earlier one
            return (*(e for e in held or () if e[0] != publisher), entry)

        self._recent_deliveries.update(event_id, self.batch, add)

    def reescrow(self, results: Sequence[RouteResult], lost: LostKeys) -> int:
        """Seal again the escrow of deliveries made under case keys that were not stored.

        ``lost`` is ``CaseKeys.deferred``'s: another worker stored those cases' keys first,
        so a delivery sealed under ours would carry an escrow nothing opens. Its escrow is
        sealed under the stored key instead and the record signed again; nothing else of it
        changes (``hub.envelope.escrow.reescrow``), and no event is decided again. A case
        shredded meanwhile keeps the escrow it has: no stored key opens it, as after a shred.

        Returns how many deliveries were sealed again.
        """
        pairs = [(ours, lost.kept[name]) for name, ours in lost.ours.items()]
        swaps = [(ours, kept) for ours, kept in pairs if kept is not None]
        done = 0
        for result in results:
            for i, message in enumerate(result.messages):
                if not message.topic.startswith(topics.OUTBOUND_PREFIX):
                    continue
                for ours, kept in swaps:
                    again = reescrow(message, old=ours, new=kept, sign=self.envelope.store.sign)
                    if again is not None:
                        result.messages[i] = again
                        done += 1
                        break
        _log.warning(
            "case_key_race",
            cases=len(lost.ours),
            shredded=len(pairs) - len(swaps),
            deliveries_sealed_again=done,
        )
        return done

    def forget_stored(self, batch: int) -> None:
        """Drop what this router kept of batches up to ``batch``: the audit store has them.

        The route loop calls it with ``AuditWatch.stored_through`` before each batch.
        """
        self._recent.forget_through(batch)
        self._recent_deliveries.forget_through(batch)

    def _delivered_to(self, event_id: str, party: str) -> dict[str, str | None]:
        """Publisher -> event type of each event with this id that was delivered to ``party``.

        This router's recent deliveries first (the audit store may not have them yet), then
        the audit store.
        """
        found: dict[str, str | None] = {
            publisher: event_type
            for publisher, event_type, parties in self._recent_deliveries.get(event_id) or ()
            if party in parties
        }
        if self.delivered is not None and event_id:
            for publisher, event_type in self.delivered(event_id, party):
                found.setdefault(publisher, event_type)
        return found

    def _subject(self, event: InboundEvent) -> str | None:
        refs = subject_refs(event.attributes.type, event.data)
        return self.pseudonymiser.subject(refs[0]) if refs else None

    def _suspension_notice(self, event: InboundEvent, decision: Decision) -> list[wire.WireMessage]:
        """Tell the publisher which agreements lapsed and who did not receive its event."""
        attrs = event.attributes
        agreements = [a for a in self.protocol.agreements if a.id in decision.suspended_agreements]
        withheld = sorted(
            r.party
            for r in decision.recipients
            if r.outcome == "withhold" and r.reason.startswith(f"rule {r.rule_id} suspended")
        )
        detail = "; ".join(
            f"information sharing agreement {a.id} ({a.title}) passed its review date "
            f"{a.review_date}"
            for a in agreements
        )
        body = {
            "event_id": attrs.id,
            "reason": "agreement_suspended",
            "agreements": [a.id for a in agreements],
            "withheld_from": withheld,
            "detail": f"{detail}: not shared with {', '.join(withheld)} until it is reviewed",
        }
        notice_id = str(uuid.uuid5(_NOTICE_NS, f"suspended/{attrs.source}/{attrs.id}"))
        message = self._notice_message(attrs.party, notice_id, SUSPENDED_TYPE, body)
        return [message] if message is not None else []

    def _common(
        self, event: InboundEvent, decision: Decision | None, case: str | None
    ) -> dict[str, Any]:
        """What every audit record of the event shares; ``case`` is its ``case_ref``."""
        attrs = event.attributes
        return {
            "time": self.clock(),
            "event_id": attrs.id,
            "event_type": attrs.type,
            "event_time": attrs.time,
            "publisher": attrs.party,
            "protocol_hash": decision.protocol_hash if decision else self.protocol.content_hash,
            "case_pseudonym": self.pseudonymiser.case(case) if case else None,
            "subject_pseudonyms": tuple(
                self.pseudonymiser.subject(s) for s in subject_refs(attrs.type, event.data)
            ),
            "origin": str(event.origin) if event.origin else None,
        }

    def _case_escrow(self, case: str | None) -> Callable[[bytes, str], str | None] | None:
        """The escrow hook for one event's deliveries: the case secret looked up once.

        Lazily, on the first delivery: an event that delivers nothing creates no case key.
        """
        escrow = self.escrow
        if escrow is None or case is None:
            return None
        resolved: list[Callable[[bytes, str], str | None] | None] = []

        def seal(case_key: bytes, dek_id: str) -> str | None:
            if not resolved:
                resolved.append(escrow(case))
            sealer = resolved[0]
            return sealer(case_key, dek_id) if sealer is not None else None

        return seal

    def _shared(
        self,
        event: InboundEvent,
        decision: Decision,
        *,
        escrow: Callable[[bytes, str], str | None] | None,
    ) -> _Shared:
        """What every delivery of this event has in common, worked out once per event."""
        attrs = event.attributes
        return _Shared(
            data=event.data,
            attributes=EventAttributes(
                id=attrs.id,
                source=attrs.source,
                type=attrs.type,
                time=attrs.time,
                subject=attrs.subject,
                datacontenttype=wire.JSON,
            ),
            key=event.key.encode() if event.key is not None else None,
            protocol_hash=decision.protocol_hash,
            suite=self.protocol.crypto.suite_for(attrs.type),
            escrow=escrow,
        )

    def _deliver(self, shared: _Shared, outcome: RecipientDecision) -> tuple[wire.WireMessage, str]:
        """Minimise, seal to the recipient, sign; the digest is of the exact bytes sent."""
        plaintext, listed = shared.payload(outcome.fields)
        sealed = self.envelope.seal(
            shared.attributes,
            key=shared.key,
            plaintext=plaintext,
            recipient=outcome.party,
            extensions={
                "hubprotocol": shared.protocol_hash,
                "hubrule": outcome.rule_id or "",
                "hubfields": listed,
            },
            escrow=shared.escrow,
            suite=shared.suite,
        )
        message = wire.WireMessage(
            topic=topics.outbound(outcome.party),
            key=shared.key,
            value=sealed.value,
            headers=sealed.headers,
        )
        return message, sealed.value_sha256

    def _acknowledge(self, event: InboundEvent) -> RouteResult:
        """A recipient's receipt: audited against the event it acknowledges (``acks``)."""
        records = acknowledgement_records(
            event,
            delivered_to=self._delivered_to,
            common=self._common(event, None, case_ref(event.attributes.type, event.data)),
        )
        return RouteResult(event_id=event.attributes.id, audit=records)

    # -- quarantine --------------------------------------------------------------------------

    def _quarantine(
        self,
        origin: Origin,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes | None]] | None,
        attrs: EventAttributes | None,
        rej: _Reject,
    ) -> RouteResult:
        """Keep the record whole on hub.quarantine, audit it, and tell the publisher why."""
        # The claimed id is recorded (a breach search finds it); the record id includes the
        # origin, so a replayed or spoofed id never hides behind the original's records, and
        # the record's digest, so two records at one origin (offsets reused) never share one.
        event_id = attrs.id if attrs else f"unparsed:{origin}"
        if rej.reason is QuarantineReason.DUPLICATE_EVENT_ID:
            event_id = f"duplicate:{origin}"  # the original keeps its own audit records
        owner = topics.owner_of(origin.topic)
        extra = [
            ("hub_reason", rej.reason.value.encode()),
            ("hub_detail", rej.detail.encode()),
            ("hub_origin", str(origin).encode()),
        ]
        original = [(k, v or b"") for k, v in headers or ()]
        message, cut = self._quarantine_copy(key, value, original, extra)
        reason = f"{rej.reason.value}: {rej.detail}"
        if cut is not None:  # the audit record says which copy was kept, and how to match it
            reason += f"; {cut}"
        record = AuditRecord(
            record_id=record_id_for(
                f"{event_id}@{origin}#{consumed_digest(key, value, original)}",
                None,
                AuditDecision.REJECTED.value,
            ),
            time=self.clock(),
            event_id=event_id,
            event_type=attrs.type if attrs else None,
            event_time=attrs.time if attrs else None,
            publisher=owner,
            decision=AuditDecision.REJECTED,
            reason=reason,
            protocol_hash=self.protocol.content_hash,
            origin=str(origin),
        )
        result = RouteResult(
            event_id=event_id, audit=[record], messages=[message], quarantined=rej.reason
        )
        # a peer hub's own message (a receipt, a notice) is never answered with a notice: two
        # linked hubs would otherwise tell each other of each other's refusals without end
        if attrs is not None and attrs.party == "hub" and self.protocol.is_peer(owner or ""):
            return result
        if owner is not None and self.protocol.party(owner) is not None:
            notice = self._notice(owner, origin, event_id, rej)
            if notice is not None:
                result.messages.append(notice)
        return result

    def _quarantine_copy(
        self,
        key: bytes | None,
        value: bytes,
        original: list[tuple[str, bytes]],
        extra: list[tuple[str, bytes]],
    ) -> tuple[wire.WireMessage, str | None]:
        """The record for hub.quarantine: whole if it fits, else a digest and a truncated copy.

        A record as large as the broker accepts (about 1 MB) does not fit on hub.quarantine
        with the hub's headers added, and the producer refusing it would stop the worker with
        the event half handled (issue 15). Above ``quarantine_max_bytes`` the value is cut to
        fit and ``hub_truncated`` (its original length) and ``hub_sha256`` (the SHA-256 of the
        whole value, hex) say so; original headers taking more than a quarter of the limit,
        or a key over 1 KiB, are replaced the same way. The second element says what was cut,
        for the audit record (None when the copy is whole).
        """
        limit = self.quarantine_max_bytes
        headers = original + extra
        if _record_size(key, value, headers) <= limit:
            return wire.WireMessage(
                topic=topics.QUARANTINE, key=key, value=value, headers=headers
            ), None
        marks: list[tuple[str, bytes]] = []
        cuts: list[str] = []
        if _headers_size(original) > limit // _HEADER_SHARE:
            digest = hashlib.sha256()
            for name, raw in original:  # length-prefixed, so the digest is unambiguous
                update_length_prefixed(digest, (name.encode(), raw))
            marks += [
                ("hub_headers_dropped", str(len(original)).encode()),
                ("hub_headers_sha256", digest.hexdigest().encode()),
            ]
            cuts.append(f"{len(original)} headers dropped (sha256 {digest.hexdigest()})")
            original = []
        if key is not None and len(key) > _KEPT_KEY_BYTES:
            key_digest = hashlib.sha256(key).hexdigest()
            marks += [
                ("hub_key_truncated", str(len(key)).encode()),
                ("hub_key_sha256", key_digest.encode()),
            ]
            cuts.append(f"key of {len(key)} bytes cut (sha256 {key_digest})")
            key = key[:_KEPT_KEY_BYTES]
        value_digest = hashlib.sha256(value).hexdigest()
        marks += [
            ("hub_truncated", str(len(value)).encode()),
            ("hub_sha256", value_digest.encode()),
        ]
        headers = original + extra + marks
        kept = value[: max(0, limit - _record_size(key, b"", headers))]
        cuts.insert(
            0,
            f"quarantined as a truncated copy ({len(kept)} of {len(value)} bytes, "
            f"sha256 {value_digest}): hub.quarantine takes at most {limit} bytes",
        )
        message = wire.WireMessage(topic=topics.QUARANTINE, key=key, value=kept, headers=headers)
        return message, "; ".join(cuts)

    def _notice(
        self, owner: str, origin: Origin, event_id: str, rej: _Reject
    ) -> wire.WireMessage | None:
        """A rejection notice on the publisher's own outbound topic: the publisher's error.

        Sealed and signed like any delivery; a publisher with no usable key gets none (the
        audit record and the quarantine copy remain).
        """
        notice_id = str(uuid.uuid5(_NOTICE_NS, str(origin)))
        body = {
            "rejected_event_id": event_id,
            "reason": rej.reason.value,
            "detail": rej.detail,
            "origin": str(origin),
        }
        return self._notice_message(owner, notice_id, REJECTED_TYPE, body)

    def _notice_message(
        self, owner: str, notice_id: str, notice_type: str, body: Mapping[str, Any]
    ) -> wire.WireMessage | None:
        attrs = EventAttributes(
            id=notice_id,
            source="/parties/hub",
            type=notice_type,
            time=self.clock(),
            subject=None,
            datacontenttype=wire.JSON,
        )
        try:
            sealed = self.envelope.seal(
                attrs, key=None, plaintext=wire.canonical_json(body), recipient=owner
            )
        except KeyStoreError:
            return None
        return wire.WireMessage(
            topic=topics.outbound(owner), key=None, value=sealed.value, headers=sealed.headers
        )


def _headers_size(headers: Sequence[tuple[str, bytes | None]]) -> int:
    """Bytes of headers in a Kafka record (v2): name, value, and their varint lengths.

    Every delivery is measured (``_decide``): the names' UTF-8 length is their length when
    they are ASCII, as every header name the hub writes is.
    """
    names = "".join([name for name, _ in headers])
    return (
        10 * len(headers)
        + (len(names) if names.isascii() else len(names.encode()))
        + sum([len(value) for _, value in headers if value])
    )


def _record_size(
    key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes | None]]
) -> int:
    """An upper bound of the bytes a record takes in a produce request (Kafka record batch v2).

    The batch header (61 bytes), the record's own varints (length, attributes, timestamp and
    offset deltas, key and value lengths, header count: at most 5 bytes each, 7 of them), the
    key, the value and the headers: at least what aiokafka's ``estimate_size_in_bytes``
    checks against ``max_request_size``.
    """
    return 61 + 7 * 5 + len(key or b"") + len(value) + _headers_size(headers)


class _Shared:
    """One event's deliveries' common part: attributes, key, suite, and payload per field list.

    Recipients under one rule share a field list, so the minimised payload and its canonical
    JSON are built once per distinct list (``payload``), not once per recipient.
    """

    __slots__ = ("_payloads", "attributes", "data", "escrow", "key", "protocol_hash", "suite")

    def __init__(
        self,
        *,
        data: Mapping[str, Any],
        attributes: EventAttributes,
        key: bytes | None,
        protocol_hash: str,
        suite: str | None,
        escrow: Callable[[bytes, str], str | None] | None,
    ) -> None:
        self.data = data
        self.attributes = attributes
        self.key = key
        self.protocol_hash = protocol_hash
        self.suite = suite
        self.escrow = escrow
        self._payloads: dict[tuple[str, ...], tuple[bytes, str]] = {}

    def payload(self, fields: tuple[str, ...]) -> tuple[bytes, str]:
        """(canonical JSON of the minimised payload, the ``hubfields`` header) for ``fields``."""
        found = self._payloads.get(fields)
        if found is None:
            found = (wire.canonical_json(minimise(self.data, fields)), ",".join(sorted(fields)))
            self._payloads[fields] = found
        return found


class _Records:
    """One event's audit records, one per recipient decision.

    The record is the boundary model (``AuditRecord``), built without a pydantic validation
    per recipient: the values the event's records share (``Router._common``) are validated
    once, in a template record, and each recipient's record is the template with its own
    values (``model_copy``: no validation). Those values are ones the router made itself from
    validated models (a ``RecipientDecision``, a hex digest, a derived id), of exactly the
    types the model holds, so the record, its ``model_fields_set`` and its JSON are those of
    ``AuditRecord(**values)`` (``tests/unit/test_router.py`` holds them byte for byte).
    """

    __slots__ = ("_common", "_fields_set", "_template")

    def __init__(self, common: Mapping[str, Any]) -> None:
        self._common = common
        self._template: AuditRecord | None = None
        # the template's fields and every recipient's (the same keys each time)
        self._fields_set: frozenset[str] = frozenset()

    def of(
        self,
        outcome: RecipientDecision,
        decision: AuditDecision,
        *,
        payload_sha256: str | None = None,
    ) -> AuditRecord:
        """The record of one recipient's decision."""
        common = self._common
        party = None if outcome.party == "*" else outcome.party
        values = {
            # the publisher is in the material: two parties' events may share an id
            "record_id": record_id_for(
                common["event_id"], party, decision.value, source=common["publisher"]
            ),
            "recipient": party,
            "decision": decision,
            "rule": outcome.rule_id,
            "reason": outcome.reason,
            "lawful_basis": outcome.lawful_basis,
            "condition": outcome.condition,
            "purpose": outcome.purpose,
            "gateway": outcome.gateway,
            "fields": tuple(sorted(outcome.fields)),
            "payload_sha256": payload_sha256,
        }
        template = self._template
        if template is None:  # the first record is validated whole, and serves as template
            template = self._template = AuditRecord(**common, **values)
            self._fields_set = frozenset(template.model_fields_set)
            return template
        return _copied(template, values, self._fields_set)


def _copied(
    template: AuditRecord, values: dict[str, Any], fields_set: frozenset[str]
) -> AuditRecord:
    """``template.model_copy(update=values)`` where ``values`` set the same fields each time.

    What pydantic's ``model_copy`` and ``model_construct`` do (a new instance, its field
    dict, the set of fields given, no extra or private values), without their general
    cases: a quarter of the cost, on a path taken once per recipient of every event.
    ``tests/unit/test_router.py`` holds the records to ``AuditRecord(**values)``, field for
    field and byte for byte.
    """
    record = object.__new__(AuditRecord)
    _set(record, "__dict__", {**template.__dict__, **values})
    _set(record, "__pydantic_fields_set__", set(fields_set))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


_set = object.__setattr__


def _marked(decision: Decision, marks: Sequence[str]) -> Decision:
    """Append ``marks`` (legacy grading, the original of a sanitised item) to every outcome.

    The condition of a delivery and the reason of every outcome carry them, so the audit
    record of each recipient, delivered or withheld, says it (``hub audit chronology`` shows
    reasons, ``hub audit recipients`` conditions).
    """
    if not marks:
        return decision
    note = "; ".join(marks)
    return decision.model_copy(
        update={
            "recipients": tuple(
                r.model_copy(
                    update={
                        "reason": f"{r.reason}; {note}",
                        "condition": f"{r.condition}; {note}" if r.condition else note,
                    }
                    if r.outcome == "deliver"
                    else {"reason": f"{r.reason}; {note}"}
                )
                for r in decision.recipients
            )
        }
    )
