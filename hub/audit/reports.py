"""The reports an information governance (IG) officer needs, built over the ``AuditStore``.

Each report answers one question a partnership is asked in law:

- ``subject_access``: who received what about this person, when and why (UK GDPR Art 15;
  for police and probation as competent authorities, DPA 2018 s45). The reply is due within
  one month of the request (extendable by two) and must name the recipients. Exemptions
  (e.g. DPA 2018 Sch 2 para 2, crime; s45(4) for law enforcement) apply case by case, never
  to whole categories, so ``mark_exempt`` marks one delivery at a time and the report lists
  every withheld entry with its recorded reason.
- ``chronology``: a Domestic Homicide Review chronology (Home Office DHR statutory guidance:
  which agency had contact, what each knew, and when).
- ``recipients``: every party that received an event, so a correction, erasure or restriction
  reaches each one (UK GDPR Art 19) and a breach can be scoped.
- ``volumes``: disclosures per rule and party, for the regular review of the information
  sharing agreement (ICO Data Sharing Code).

An event is its publisher and id (CloudEvents: source and id): two parties may publish the
same id. A report asked about an id may show both parties' events, each under its publisher;
nothing here joins one party's event to the other's records (deliveries, acknowledgements,
exemptions are matched on publisher, event id and recipient).

Audit retention (``hub audit prune``) removes the oldest records; each report then carries a
``PrunedNote`` (records written before a date are gone), so an officer never mistakes a
pruned period for one with no disclosures.

The functions are pure reads over ``AuditStore.query`` (plus one ``append`` in
``mark_exempt``): no SQL of their own, so they run unchanged on SQLite and PostgreSQL.
Where ``query`` cannot filter or join, the report fetches and aggregates in Python; each
docstring states the cost.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import AuditStore
from hub.audit.subjects import person_ref
from hub.clock import utc
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord, record_id_for

__all__ = [
    "Chronology",
    "ChronologyEntry",
    "ChronologyReceipt",
    "ChronologyWithheld",
    "Disclosure",
    "EventRecipient",
    "Exemption",
    "PrunedNote",
    "SubjectAccessReport",
    "VolumeRow",
    "WithheldFromResponse",
    "chronology",
    "mark_exempt",
    "normalise_subject_ref",
    "pruned_note",
    "recipients",
    "subject_access",
    "volumes",
]

#: first page size when a report needs every matching record (see ``_fetch_all``)
_PAGE = 10_000

_Timed = TypeVar("_Timed", AuditRecord, "Exemption")


# -- models --------------------------------------------------------------------------------


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True)


class PrunedNote(_Report):
    """Records written before ``before`` were pruned under the protocol's audit retention."""

    records: int
    before: datetime
    pruned_at: datetime

    def text(self) -> str:
        """The note as a sentence for the report."""
        return (
            f"records written before {utc(self.before):%Y-%m-%d} were pruned under audit "
            f"retention on {utc(self.pruned_at):%Y-%m-%d} ({self.records} records); "
            f"nothing before that date can be reported"
        )


class Disclosure(_Report):
    """One delivery of information about the subject to one recipient."""

    record_id: str
    time: datetime
    event_id: str
    event_type: str | None
    publisher: str | None
    recipient: str | None
    rule: str | None
    lawful_basis: str | None
    condition: str | None
    purpose: str | None
    fields: tuple[str, ...]


class Exemption(_Report):
    """One IG officer's decision to withhold a delivery from a subject access response."""

    record_id: str
    time: datetime
    reason: str


class WithheldFromResponse(_Report):
    """A delivery left out of the response under an exemption: the reason, not the details.

    ``delivery_record_id`` lets the IG officer find the delivery again; the recipient, fields
    and rule are deliberately absent, since naming them could defeat the exemption.
    """

    delivery_record_id: str
    exemptions: tuple[Exemption, ...]


class SubjectAccessReport(_Report):
    """Everything the audit log holds about one subject's disclosures."""

    subject_pseudonym: str
    generated_at: datetime
    disclosures: tuple[Disclosure, ...]
    withheld_from_response: tuple[WithheldFromResponse, ...]
    pruned: PrunedNote | None = None


class ChronologyReceipt(_Report):
    """What one agency received about the case in one event, and when it acknowledged."""

    record_id: str
    recipient: str | None
    time: datetime
    rule: str | None
    lawful_basis: str | None
    fields: tuple[str, ...]
    acknowledged_at: datetime | None
    acknowledgement: str | None
    #: conditions relied on and marks (a sanitised item's original, a legacy grading)
    condition: str | None = None


class ChronologyWithheld(_Report):
    """A party the protocol did not share the event with, and the recorded reason."""

    record_id: str
    recipient: str | None
    time: datetime
    rule: str | None
    reason: str


class ChronologyEntry(_Report):
    """One event of the case: who published it, who received it, who did not."""

    event_id: str
    event_type: str | None
    event_time: datetime | None
    publisher: str | None
    received: tuple[ChronologyReceipt, ...]
    withheld: tuple[ChronologyWithheld, ...]


class Chronology(_Report):
    """A case's events across agencies in time order (Domestic Homicide Review)."""

    case_pseudonym: str
    generated_at: datetime
    entries: tuple[ChronologyEntry, ...]
    pruned: PrunedNote | None = None


class EventRecipient(_Report):
    """One party that received an event: what, when, under which rule, and the exact bytes."""

    record_id: str
    recipient: str | None
    time: datetime
    rule: str | None
    lawful_basis: str | None
    fields: tuple[str, ...]
    payload_sha256: str | None
    acknowledged: bool
    acknowledged_at: datetime | None
    #: conditions relied on and marks (a sanitised item's original, a legacy grading)
    condition: str | None = None
    #: whose event it was: two parties may publish the same event id
    publisher: str | None = None


class VolumeRow(_Report):
    """How often one rule shared with (or withheld from) one party since a date."""

    rule: str | None
    recipient: str | None
    delivered: int
    withheld: int


# -- subject access ------------------------------------------------------------------------


def normalise_subject_ref(ref: str) -> str:
    """A subject reference as the hub pseudonymised it when it wrote the audit.

    Pub Watch names a person, not an agency reference: ``"name|YYYY-MM-DD"`` is normalised
    with ``person_ref`` (whitespace collapsed, case folded) so a SAR typed differently from
    the original ban still finds it. Other references pass through unchanged (the
    pseudonymiser itself strips and case-folds them).
    """
    name, sep, dob = ref.rpartition("|")
    return person_ref(name, dob) if sep else ref


def subject_access(
    store: AuditStore, pseudonymiser: Pseudonymiser, subject_ref: str
) -> SubjectAccessReport:
    """Every disclosure about a subject, for a subject access response.

    UK GDPR Art 15(1)(c) (and DPA 2018 s45(2)(e) for competent authorities) entitles the
    subject to the recipients of their data; the response is due within one month. Only
    deliveries are disclosures: a withheld or rejected event reached nobody.

    A delivery an IG officer marked with ``mark_exempt`` appears under
    ``withheld_from_response`` with each recorded reason instead of its details: exemptions
    apply case by case, so each one stays visible to the officer who signs the response.

    Cost: one ``query`` by subject pseudonym (indexed), fetched whole and split in Python;
    proportional to the records naming this subject.

    Args:
        store: the audit store.
        pseudonymiser: holds the hub's key; the reference never reaches the store.
        subject_ref: the subject's reference; Pub Watch: ``"name|YYYY-MM-DD"``.
    """
    pseudonym = pseudonymiser.subject(normalise_subject_ref(subject_ref))
    records = _fetch_all(store, subject_pseudonym=pseudonym)
    # an exemption copies its delivery's publisher, event and recipient: all three name it
    exemptions: dict[tuple[str | None, str, str | None], list[Exemption]] = defaultdict(list)
    for record in records:
        if record.decision is AuditDecision.EXEMPTED:
            exemptions[(record.publisher, record.event_id, record.recipient)].append(
                Exemption(record_id=record.record_id, time=record.time, reason=record.reason)
            )
    disclosures: list[Disclosure] = []
    withheld: list[WithheldFromResponse] = []
    for record in _by_time(r for r in records if r.decision is AuditDecision.DELIVERED):
        marked = exemptions.get((record.publisher, record.event_id, record.recipient))
        if marked:
            withheld.append(
                WithheldFromResponse(
                    delivery_record_id=record.record_id, exemptions=tuple(_by_time(marked))
                )
            )
        else:
            disclosures.append(_disclosure(record))
    return SubjectAccessReport(
        subject_pseudonym=pseudonym,
        generated_at=datetime.now(UTC),
        disclosures=tuple(disclosures),
        withheld_from_response=tuple(withheld),
        pruned=pruned_note(store),
    )


def mark_exempt(
    store: AuditStore,
    *,
    record_id: str,
    exemption: str,
    reason: str,
    officer: str,
    now: datetime | None = None,
) -> AuditRecord:
    """Withhold one delivery from subject access responses, and audit that decision.

    The log is append-only, so the exemption is a new ``EXEMPTED`` record naming the same
    event and recipient; it copies the subject and case pseudonyms, so the SAR that it
    affects finds it. Marking the same record twice by the same officer is idempotent
    (deterministic record id); a second officer's mark is kept alongside the first.

    Cost: ``query`` cannot look up a record id, so this scans delivered records (a few
    marks per request; a keyed ``get`` on the store would make it constant).

    Args:
        store: the audit store.
        record_id: the delivery to withhold (from the SAR report).
        exemption: the exemption relied on, e.g. ``"DPA 2018 Sch 2 para 2 (crime)"``.
        reason: why it applies to this delivery (exemptions are case by case).
        officer: who decided.
        now: the time to record (default: the current UTC time).

    Returns:
        The exemption record as stored.

    Raises:
        AuditError: a blank argument, or no delivered record with this id.
    """
    for name, value in (("exemption", exemption), ("reason", reason), ("officer", officer)):
        if not value.strip():
            raise AuditError(f"exemption {name}: expected text, got an empty value")
    original = next(
        (
            r
            for r in _fetch_all(store, decision=AuditDecision.DELIVERED)
            if r.record_id == record_id
        ),
        None,
    )
    if original is None:
        raise AuditError(
            f"audit record {record_id}: expected a delivered record to exempt, got none"
        )
    marked = AuditRecord(
        record_id=record_id_for(original.record_id, officer.strip(), "exempted"),
        time=now or datetime.now(UTC),
        event_id=original.event_id,
        event_type=original.event_type,
        event_time=original.event_time,
        publisher=original.publisher,
        recipient=original.recipient,
        decision=AuditDecision.EXEMPTED,
        rule=original.rule,
        reason=f"{exemption.strip()}: {reason.strip()} (officer {officer.strip()})",
        case_pseudonym=original.case_pseudonym,
        subject_pseudonyms=original.subject_pseudonyms,
    )
    if store.append([marked]):
        return marked
    # Already marked by this officer: the first write stands; return it as stored.
    stored = store.query(event_id=original.event_id, decision=AuditDecision.EXEMPTED)
    return next((r for r in stored if r.record_id == marked.record_id), marked)


# -- chronology ----------------------------------------------------------------------------


def chronology(store: AuditStore, pseudonymiser: Pseudonymiser, case_ref: str) -> Chronology:
    """A case's events across agencies, for a Domestic Homicide Review.

    The DHR statutory guidance asks each agency for a chronology of its contact with the
    victim and perpetrator; this gives the partnership's side of it: per event, in event
    time order, what each agency received (fields), when, under which rule, when it
    acknowledged, and which parties were not sent it and why. Exemptions from subject access
    do not apply here: a review panel is not the subject.

    Cost: one ``query`` by case pseudonym (indexed), then one ``query`` per event for its
    acknowledgements, which carry no case pseudonym (the acknowledgement names the event,
    not the case).

    Args:
        store: the audit store.
        pseudonymiser: holds the hub's key; the reference never reaches the store.
        case_ref: the MARAC case, SOCJAG intel or Pub Watch ban reference.
    """
    pseudonym = pseudonymiser.case(case_ref)
    # by publisher and id: two parties' events with one id are two entries
    events: dict[tuple[str | None, str], list[AuditRecord]] = {}
    for record in _fetch_all(store, case_pseudonym=pseudonym):
        events.setdefault((record.publisher, record.event_id), []).append(record)
    acks: dict[str, dict[tuple[str | None, str | None], AuditRecord]] = {}
    for _publisher, event_id in events:
        if event_id not in acks:
            acks[event_id] = _acknowledgements(store, event_id)
    entries = [
        _chronology_entry(event_id, recs, acks[event_id])
        for (_publisher, event_id), recs in events.items()
    ]
    entries.sort(key=lambda e: utc(e.event_time or _first_time(e)))
    return Chronology(
        case_pseudonym=pseudonym,
        generated_at=datetime.now(UTC),
        entries=tuple(entries),
        pruned=pruned_note(store),
    )


def _chronology_entry(
    event_id: str,
    records: list[AuditRecord],
    acks: dict[tuple[str | None, str | None], AuditRecord],
) -> ChronologyEntry:
    received: list[ChronologyReceipt] = []
    withheld: list[ChronologyWithheld] = []
    for record in _by_time(records):
        if record.decision is AuditDecision.DELIVERED:
            ack = _ack_of(acks, record)
            received.append(
                ChronologyReceipt(
                    record_id=record.record_id,
                    recipient=record.recipient,
                    time=record.time,
                    rule=record.rule,
                    lawful_basis=record.lawful_basis,
                    fields=record.fields,
                    acknowledged_at=ack.time if ack else None,
                    acknowledgement=ack.reason if ack else None,
                    condition=record.condition,
                )
            )
        elif record.decision is AuditDecision.WITHHELD:
            withheld.append(
                ChronologyWithheld(
                    record_id=record.record_id,
                    recipient=record.recipient,
                    time=record.time,
                    rule=record.rule,
                    reason=record.reason,
                )
            )
    first = records[0]
    return ChronologyEntry(
        event_id=event_id,
        event_type=first.event_type,
        event_time=first.event_time,
        publisher=first.publisher,
        received=tuple(received),
        withheld=tuple(withheld),
    )


def _first_time(entry: ChronologyEntry) -> datetime:
    times = [r.time for r in entry.received] + [w.time for w in entry.withheld]
    return min(times, key=utc) if times else datetime.min.replace(tzinfo=UTC)


# -- recipients (Art 19) -------------------------------------------------------------------


def recipients(
    store: AuditStore, event_id: str, *, publisher: str | None = None
) -> list[EventRecipient]:
    """Every party that received an event, in delivery order.

    UK GDPR Art 19 requires a rectification, erasure or restriction to be passed to each
    recipient; a breach response needs the same list, with the SHA-256 of the exact bytes
    each party was sent, so a leaked copy can be traced to its recipient.

    Two parties may publish the same id: then both events' recipients are listed, each with
    its ``publisher`` (pass ``publisher`` to list one party's event only).

    Cost: one ``query`` by event id (indexed); the records of one event are few.
    """
    records = _fetch_all(store, event_id=event_id)
    acks = _ack_index(records)
    out: list[EventRecipient] = []
    for record in _by_time(
        r
        for r in records
        if r.decision is AuditDecision.DELIVERED and publisher in (None, r.publisher)
    ):
        ack = _ack_of(acks, record)
        out.append(
            EventRecipient(
                record_id=record.record_id,
                recipient=record.recipient,
                time=record.time,
                rule=record.rule,
                lawful_basis=record.lawful_basis,
                fields=record.fields,
                payload_sha256=record.payload_sha256,
                acknowledged=ack is not None,
                acknowledged_at=ack.time if ack else None,
                condition=record.condition,
                publisher=record.publisher,
            )
        )
    return out


# -- volumes -------------------------------------------------------------------------------


def volumes(store: AuditStore, since: datetime) -> list[VolumeRow]:
    """Deliveries and withholdings per rule and recipient since a date, for protocol review.

    The ICO Data Sharing Code expects an agreement to be reviewed regularly; how often each
    rule actually fired, and for whom, shows which rules are used, unused or too broad.
    Rows are sorted by rule, then recipient (``None`` first).

    Cost: ``AuditStore`` has no grouped count, so this fetches every delivered and withheld
    record since the date (two ``query`` calls) and counts in Python: linear in the records
    in the period, so keep the period to a review cycle.

    Args:
        store: the audit store.
        since: count records written at or after this time (naive means UTC).
    """
    counts: dict[tuple[str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for column, decision in enumerate((AuditDecision.DELIVERED, AuditDecision.WITHHELD)):
        for record in _fetch_all(store, decision=decision, since=since):
            counts[(record.rule, record.recipient)][column] += 1
    return [
        VolumeRow(rule=rule, recipient=recipient, delivered=d, withheld=w)
        for (rule, recipient), (d, w) in sorted(
            counts.items(), key=lambda item: (item[0][0] or "", item[0][1] or "")
        )
    ]


# -- helpers -------------------------------------------------------------------------------


def pruned_note(store: AuditStore, *, since: datetime | None = None) -> PrunedNote | None:
    """The note a report needs if the log was pruned (and, given ``since``, reaches into it).

    ``recipients`` and ``volumes`` return plain lists, so their callers ask for it; with
    ``since`` the note is ``None`` when the period starts at or after the cut-off.
    """
    prunes = store.prunes()
    if not prunes:
        return None
    last = prunes[-1]
    if since is not None and utc(since) >= utc(last.before):
        return None
    return PrunedNote(records=last.size, before=last.before, pruned_at=last.pruned_at)


def _fetch_all(store: AuditStore, **filters: Any) -> list[AuditRecord]:
    """Every record matching ``filters``, however many.

    ``query`` has a limit and no offset, so a full page is fetched again with a doubled
    limit until a result comes back shorter than its limit.
    """
    limit = _PAGE
    while True:
        records = store.query(limit=limit, **filters)
        if len(records) < limit:
            return records
        limit *= 2


def _acknowledgements(
    store: AuditStore, event_id: str
) -> dict[tuple[str | None, str | None], AuditRecord]:
    return _ack_index(_fetch_all(store, event_id=event_id, decision=AuditDecision.ACKNOWLEDGED))


def _ack_index(
    records: Iterable[AuditRecord],
) -> dict[tuple[str | None, str | None], AuditRecord]:
    """The earliest acknowledgement per (acknowledged event's publisher, acknowledging party).

    An acknowledgement record's ``publisher`` is the publisher of the event acknowledged and
    its ``recipient`` the party that acknowledged (``Router._acknowledge``); each status
    (``received``, ``actioned``) is a record, and the earliest is when it was acknowledged.
    """
    acks: dict[tuple[str | None, str | None], AuditRecord] = {}
    for record in _by_time(r for r in records if r.decision is AuditDecision.ACKNOWLEDGED):
        acks.setdefault((record.publisher, record.recipient), record)
    return acks


def _ack_of(
    acks: dict[tuple[str | None, str | None], AuditRecord], delivery: AuditRecord
) -> AuditRecord | None:
    """The acknowledgement of one delivery, matched on publisher and recipient.

    Records written before acknowledgements named the publisher carry the acknowledging
    party as ``publisher``; such a record is taken for the recipient's delivery (the only
    reading it allows).
    """
    found = acks.get((delivery.publisher, delivery.recipient))
    if found is None and delivery.recipient != delivery.publisher:
        found = acks.get((delivery.recipient, delivery.recipient))
    return found


def _by_time(items: Iterable[_Timed]) -> list[_Timed]:
    """Stable sort by time: records written at the same instant keep their append order."""
    return sorted(items, key=lambda item: utc(item.time))


def _disclosure(record: AuditRecord) -> Disclosure:
    return Disclosure(
        record_id=record.record_id,
        time=record.time,
        event_id=record.event_id,
        event_type=record.event_type,
        publisher=record.publisher,
        recipient=record.recipient,
        rule=record.rule,
        lawful_basis=record.lawful_basis,
        condition=record.condition,
        purpose=record.purpose,
        fields=record.fields,
    )
