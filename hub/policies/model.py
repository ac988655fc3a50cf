"""The sharing protocol as data: parties, rules, prohibitions and rejections.

A protocol file (``hub/policies/*.yaml``) is the partnership's Section 115 information sharing
protocol. The engine (``hub.policies.engine``) reads only these models; ``hub policy check``
(``hub.policies.check``) proves a protocol safe before it is used.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.audit.retention import check_duration
from hub.errors import AuditError, ProtocolError
from hub.models import PARTY_ID_PATTERN
from hub.policies import durations

__all__ = [
    "HUB",
    "PEER_KIND",
    "Agreement",
    "AsbPolicy",
    "AsbThreshold",
    "AsbTimescales",
    "Condition",
    "Correction",
    "CryptoPolicy",
    "GovernancePolicy",
    "MaracPolicy",
    "Party",
    "Prohibition",
    "Protocol",
    "ProtocolInfo",
    "Publishers",
    "PubwatchPolicy",
    "RecipientClause",
    "Rejection",
    "Rule",
    "SocjagPolicy",
    "StrategicDistrict",
    "StrategicPolicy",
]

PartyId = str


def _duration(value: str) -> str:
    try:
        durations.parse(value)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from exc
    return value


#: an ISO 8601 duration the hub can apply by the calendar (P12M, P14D, PT48H)
Duration = Annotated[str, AfterValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtocolInfo(_Strict):
    """Identity and governance of the protocol document."""

    id: str
    title: str
    version: str
    review_date: dt.date | None = None
    controllers: str | None = None
    hub_id: str | None = Field(
        default=None,
        pattern=PARTY_ID_PATTERN,
        description="this hub's party id in its peers' protocols (federation): deliveries a "
        "peer hub seals to this hub name it as their recipient",
    )
    audit_retention: str | None = Field(
        default=None,
        description="ISO 8601 duration the audit log is kept, e.g. P6Y; "
        "older records may be pruned with `hub audit prune`",
    )

    @field_validator("audit_retention")
    @classmethod
    def _audit_retention_is_a_duration(cls, value: str | None) -> str | None:
        # Checked at load so a typo fails `hub policy check`, not a prune years later.
        if value is None:
            return None
        try:
            return check_duration(value)
        except AuditError as exc:
            raise ValueError(str(exc)) from exc


SuiteName = Literal["x25519", "mlkem768-x25519"]


class CryptoPolicy(_Strict):
    """How payloads are protected under this protocol (see ``hub.envelope.crypto``).

    ``suite`` is the HPKE suite for every event type not named in ``event_types``, which
    maps an event type to its own suite, e.g. ``{uk.csp.marac.flag.raised.v1:
    mlkem768-x25519}``: the post-quantum hybrid suits long-lived safeguarding data. Every
    party gets an encryption key for every suite used here (``hub keys init``, ``hub up``);
    the loader checks that each event type named has a schema.
    """

    suite: SuiteName = "x25519"
    event_types: dict[str, SuiteName] = Field(
        default_factory=dict, description="event type -> suite, overriding ``suite``"
    )
    max_data_key_uses: int = Field(default=1000, ge=1, description="messages per epoch key")
    max_data_key_age_s: float = Field(default=3600.0, gt=0, description="epoch key lifetime")

    def suite_for(self, event_type: str) -> SuiteName:
        """The suite that protects events of ``event_type`` (to the hub and from it)."""
        return self.event_types.get(event_type, self.suite)

    @property
    def suites(self) -> tuple[SuiteName, ...]:
        """Every suite the protocol uses: the default first, then the others sorted."""
        others = sorted({s for s in self.event_types.values() if s != self.suite})
        return (self.suite, *others)


class Party(_Strict):
    """Anything that can receive: an agency or one of its departments."""

    id: PartyId = Field(pattern=PARTY_ID_PATTERN)
    name: str
    display_name: str | None = Field(
        default=None,
        description="short name for screens and lists, e.g. 'Redditch BC, Housing Repairs' "
        "(default: name)",
    )
    kind: str = Field(description="organisation kind, e.g. police, council, pubwatch, retail")
    signatory: bool = True
    roles: tuple[str, ...] = ()
    district: str | None = None
    scope: Literal["agency", "department", "named"] = Field(
        default="agency",
        description="department: a department-wide feed; named: need-to-know named roles",
    )
    handling: tuple[str, ...] = Field(
        default=(),
        description="SOCJAG handling requirements this party can meet (codes declared under "
        "socjag.handling_requirements); a handling code C item reaches it only if it can "
        "meet every requirement the item carries",
    )

    @property
    def label(self) -> str:
        """What people read for this party: its display name, else its full name."""
        return self.display_name or self.name

    def has_role(self, role: str) -> bool:
        """Exact role match (``pubwatch-member:redditch``)."""
        return role in self.roles

    def has_role_family(self, family: str) -> bool:
        """Role family match: ``pubwatch-member`` matches ``pubwatch-member:redditch``."""
        return any(r == family or r.startswith(f"{family}:") for r in self.roles)


class Condition(_Strict):
    """One test. ``field`` is a dotted path in the event payload; ``party`` a party attribute.

    Exactly one operator: ``equals``/``in``/``not_in`` compare with literals;
    ``equals_field``/``in_field`` compare a party attribute with an event field;
    ``covers_field`` holds when a party's list attribute contains every item of an event's
    list field (``party: handling``: the party can meet every handling requirement).
    """

    field: str | None = None
    party: Literal["id", "district", "scope", "kind", "handling"] | None = None
    equals: Any = None
    in_: tuple[Any, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Any, ...] | None = None
    equals_field: str | None = None
    in_field: str | None = None
    covers_field: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_subject_one_operator(self) -> Condition:
        if (self.field is None) == (self.party is None):
            raise ValueError("a condition names exactly one of 'field' or 'party'")
        ops = [
            name
            for name, value in (
                ("equals", self.equals),
                ("in", self.in_),
                ("not_in", self.not_in),
                ("equals_field", self.equals_field),
                ("in_field", self.in_field),
                ("covers_field", self.covers_field),
            )
            if value is not None
        ]
        if len(ops) != 1:
            raise ValueError(
                f"a condition has exactly one operator (equals, in, not_in, equals_field, "
                f"in_field, covers_field), got {ops or 'none'}"
            )
        if self.field is not None and (self.equals_field or self.in_field or self.covers_field):
            raise ValueError(
                "equals_field/in_field/covers_field compare a 'party' attribute, not a 'field'"
            )
        return self

    @property
    def event_dependent(self) -> bool:
        """A party condition whose outcome depends on the event (``*_field`` operators)."""
        return any(op is not None for op in (self.equals_field, self.in_field, self.covers_field))

    def describe(self) -> str:
        """Human-readable form used in decision reasons."""
        subject = f"event.{self.field}" if self.field else f"party.{self.party}"
        if self.equals is not None:
            return f"{subject} == {self.equals!r}"
        if self.in_ is not None:
            return f"{subject} in {list(self.in_)!r}"
        if self.not_in is not None:
            return f"{subject} not in {list(self.not_in)!r}"
        if self.equals_field is not None:
            return f"{subject} == event.{self.equals_field}"
        if self.covers_field is not None:
            return f"{subject} covers every item of event.{self.covers_field}"
        return f"{subject} in event.{self.in_field}"


class Publishers(_Strict):
    """Who may publish the events a rule covers."""

    parties: tuple[PartyId, ...] = ()
    roles: tuple[str, ...] = ()


class RecipientClause(_Strict):
    """Recipients selected by id or by role, with conditions relating party and event.

    A role may be a template filled from the event: ``pubwatch-member:{scheme}``.
    """

    parties: tuple[PartyId, ...] = ()
    roles: tuple[str, ...] = ()
    when: tuple[Condition, ...] = ()


class Rule(_Strict):
    """A permission to disclose: which events, from whom, to whom, which fields, on what basis."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    description: str
    events: tuple[str, ...] = Field(min_length=1)
    publishers: Publishers
    when: tuple[Condition, ...] = ()
    recipients: tuple[RecipientClause, ...] = Field(min_length=1)
    fields: tuple[str, ...] = Field(min_length=1, description="allow-list; '*' = every field")
    lawful_basis: str | None = None
    conditions: tuple[str, ...] = Field(
        default=(), description="UK GDPR Art 9 / Art 10 / DPA 2018 Sch 1 conditions relied on"
    )
    gateway: str | None = Field(default=None, description="e.g. Crime and Disorder Act 1998 s115")
    purpose: str | None = None
    retention: str | None = Field(default=None, description="ISO 8601 duration, e.g. P12M")
    agreement: str | None = Field(default=None, description="information sharing agreement id")
    condition_field: str | None = Field(
        default=None,
        description="event field naming the condition the publisher relied on (e.g. the "
        "consent given or the DPA 2018 Sch 1 para 18 override); recorded in the audit",
    )
    sources: tuple[str, ...] = ()


class Correction(_Strict):
    """UK GDPR Art 19: a correction, update or withdrawal reaches every earlier recipient.

    Applies to parties that received an earlier event of the same case (from the audit log)
    and that no rule serves for this event, e.g. a department of the district the victim
    moved away from. Prohibitions still apply; agreement suspensions do not, because telling
    a holder to correct or remove what it holds only reduces harm.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]*$")
    description: str
    events: tuple[str, ...] = Field(min_length=1)
    fields: tuple[str, ...] = Field(min_length=1)
    lawful_basis: str
    conditions: tuple[str, ...] = ()
    gateway: str | None = Field(default=None, description="e.g. Crime and Disorder Act 1998 s115")
    purpose: str
    sources: tuple[str, ...] = ()


class Contact(_Strict):
    """Who to call: a professional's desk, never the victim."""

    name: str
    phone: str
    email: str


class MaracPolicy(_Strict):
    """How the partnership runs MARAC flags (SafeLives guidance, the partnership's own limits)."""

    coordinator: PartyId
    department_role: str = Field(
        default="marac-department", description="parties that must acknowledge each flag"
    )
    ack_limit: Duration = Field(default="P2D", description="ISO 8601: time to acknowledge a flag")
    review_grace: Duration = Field(
        default="P14D", description="ISO 8601: after the review date, before a flag expires"
    )
    repeat_window: Duration = Field(
        default="P12M", description="ISO 8601: a referral within this of the last is a repeat"
    )
    dash_threshold: int = Field(default=14, ge=1, le=24, description="visible high risk")
    contact: Contact | None = Field(
        default=None, description="named on the hub's expiry notices: who holders should call"
    )


_REQUIREMENT_CODE = re.compile(r"^[a-z0-9-]+$")


class SocjagPolicy(_Strict):
    """How the partnership handles SOCJAG intelligence (police grading, handling conditions).

    ``handling_requirements`` is the vocabulary of handling-condition codes an item may carry
    (code -> what the recipient undertakes); parties declare which they can meet in
    ``Party.handling``. ``accept_5x5x5`` lets older items graded on the 5x5x5 model through,
    marked as legacy; otherwise the hub refuses them and the publisher must regrade on 3x5x2.
    """

    accept_5x5x5: bool = False
    handling_requirements: dict[str, str] = Field(
        default_factory=dict, description="condition code -> what a recipient undertakes"
    )

    @field_validator("handling_requirements")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        # the same shape as the schema's hub_pattern on handling_conditions.requirements
        bad = [code for code in value if not _REQUIREMENT_CODE.fullmatch(code)]
        if bad:
            raise ValueError(f"handling requirement codes: expected [a-z0-9-]+, got {bad}")
        return value


class PubwatchPolicy(_Strict):
    """How the partnership runs Pub Watch and retail exclusion schemes (shared/domain.md).

    Who receives a ban, and segregation between pubs and retailers, are rules and
    prohibitions like any other disclosure; this section holds the lifecycle limits.
    """

    early_review_after: Duration = Field(
        default="P6M",
        description="ISO 8601: a ban may be reviewed early only this long after ban_start "
        "without incident (an earlier early review is refused)",
    )


class AsbThreshold(_Strict):
    """The partnership's local ASB Case Review threshold (ASB, Crime and Policing Act 2014 s104).

    Met when at least ``complaints`` complaints made in the ``window`` before the application
    were each reported within ``reported_within`` of the incident, or (if set) when
    ``distinct_complainants`` different complainants complained about the same problem in the
    ``window``. Complaints are the relevant bodies' answers (``uk.csp.asb.review.complaints``).
    """

    complaints: int = Field(default=3, ge=1, description="qualifying complaints needed")
    window: Duration = Field(default="P6M", description="ISO 8601: look-back from the application")
    reported_within: Duration = Field(
        default="P1M", description="ISO 8601: a complaint qualifies if reported this soon"
    )
    distinct_complainants: int | None = Field(
        default=5, ge=1, description="different complainants about the same problem (or null)"
    )


class AsbTimescales(_Strict):
    """The protocol's published timescales, in working days (England and Wales bank holidays).

    ``acknowledge``, ``answers``, ``decision`` and ``meeting`` count from the day the
    application was received; ``action_acknowledge`` from the outcome; ``appeal_review`` from
    the day the appeal was lodged.
    """

    acknowledge: int = Field(default=10, ge=1, description="acknowledge the applicant")
    answers: int = Field(default=10, ge=1, description="each relevant body answers")
    decision: int = Field(default=15, ge=1, description="the threshold decision")
    meeting: int = Field(default=20, ge=1, description="the case review meeting, its outcome")
    action_acknowledge: int = Field(default=5, ge=1, description="a body acknowledges an action")
    appeal_review: int = Field(default=20, ge=1, description="the appeal's review")


class AsbPolicy(_Strict):
    """How the partnership runs ASB Case Reviews (ASB, Crime and Policing Act 2014 s104).

    The Community Trigger (s104 and Sch 4): who coordinates, which parties are relevant bodies,
    the local threshold and the timescales. Disclosures rest on the rules; this is the workflow.
    """

    coordinator: PartyId
    body_role: str = Field(
        default="asb-relevant-body",
        description="parties that answer with their complaints and act on recommendations",
    )
    threshold: AsbThreshold = AsbThreshold()
    working_days: AsbTimescales = AsbTimescales()
    appeal_to: str = Field(
        default="the Police and Crime Commissioner", description="who hears appeals"
    )


class Agreement(_Strict):
    """An information sharing agreement that rules rely on, with its review date.

    ICO Data Sharing Code and the Information Sharing Gateway: an agreement past its review
    date should stop being relied on until it is reviewed, so the engine suspends every rule
    that names it from the day after ``review_date``.

    ``in_force: false`` declares an agreement the partnership has written down but not (or
    no longer) agreed, e.g. linking a Pub Watch scheme and a retail partnership: the rules
    that name it do not apply, and each party they would have served is withheld, naming the
    agreement, so switching it on is one explicit, reviewed change to the protocol.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-]*$")
    title: str
    review_date: dt.date
    signatories: tuple[PartyId, ...] = ()
    document: str | None = Field(default=None, description="where the signed agreement lives")
    in_force: bool = Field(
        default=True, description="false: not agreed; rules naming it do not apply (audited)"
    )

    def suspended_on(self, today: dt.date) -> bool:
        """Whether rules relying on this agreement are suspended on ``today``."""
        return today > self.review_date


class GovernancePolicy(_Strict):
    """Who keeps the agreements current, and when the hub reminds them.

    ICO Data Sharing Code: regular review; Information Sharing Gateway: review dates with
    sign-off. The hub alerts every party holding ``ig_role`` (through a rule for
    ``uk.csp.hub.agreement.alert.v1``) ``review_notice_days`` days before an agreement's review
    date and again on the day its rules are suspended, each once.
    """

    ig_role: str = Field(description="the information governance role, e.g. ig-officer")
    review_notice_days: tuple[int, ...] = Field(
        default=(30, 7),
        min_length=1,
        description="days before an agreement's review date at which the IG role is alerted",
    )

    @field_validator("review_notice_days")
    @classmethod
    def _positive_descending(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 1 for d in value) or len(set(value)) != len(value):
            raise ValueError(f"review_notice_days: expected distinct days >= 1, got {value}")
        return tuple(sorted(value, reverse=True))


_AREA_CODE = re.compile(r"^(?:[A-Z]{1,2}[0-9][A-Z0-9]?|[EW]05[0-9]{6})$")


class StrategicDistrict(_Strict):
    """The areas of one district that s17A counts are given by.

    ``outward_codes``: the general postcodes (the outward part only, Prescribed Information
    Regulations 2007) that lie mostly in the district; ``wards``: ONS ward code -> name.
    A count for an area named by no district is kept but released under ``unassigned``.
    """

    name: str
    outward_codes: tuple[str, ...] = ()
    wards: dict[str, str] = Field(default_factory=dict, description="ONS ward code -> name")

    @model_validator(mode="after")
    def _codes(self) -> StrategicDistrict:
        bad = [c for c in (*self.outward_codes, *self.wards) if not _AREA_CODE.fullmatch(c)]
        if bad:
            raise ValueError(
                f"areas: expected outward codes (B97) or ward codes (E05007870), got {bad}"
            )
        return self


class StrategicPolicy(_Strict):
    """s17A depersonalised data for the annual Strategic Assessment.

    Crime and Disorder Act 1998 s17A puts a duty on the responsible authorities to share
    depersonalised information of a prescribed description; the Crime and Disorder
    (Prescribed Information) Regulations 2007 make the information periods quarters, each
    disclosed by the end of the next. ``submitters`` is what each authority must send each
    quarter (party -> categories); the hub keeps the submissions, alerts the analysts and the
    submitter ``due_notice_days`` before a period is due and when it is late, and releases
    the partnership dataset to ``analysts`` with every cell under ``threshold`` suppressed
    (and enough others that none can be recovered from the totals).
    """

    threshold: int = Field(default=5, ge=1, le=100, description="cells below this are suppressed")
    analysts: PartyId = Field(description="the party the released dataset goes to")
    categories: dict[str, str] = Field(
        min_length=1, description="category (a symbol of the submission schema) -> what it counts"
    )
    submitters: dict[PartyId, tuple[str, ...]] = Field(
        min_length=1, description="responsible authority -> the categories it submits"
    )
    districts: dict[str, StrategicDistrict] = Field(
        default_factory=dict, description="district -> its outward codes and wards"
    )
    due_notice_days: int = Field(
        default=14, ge=1, description="days before a period is due that submitters are reminded"
    )
    first_period: str = Field(
        pattern=r"^[0-9]{4}Q[1-4]$",
        description="the first information period the hub tracks (e.g. 2026Q3): no alert is "
        "sent for an earlier one",
    )

    @model_validator(mode="after")
    def _known_categories(self) -> StrategicPolicy:
        unknown = sorted(
            {c for cats in self.submitters.values() for c in cats} - set(self.categories)
        )
        if unknown:
            raise ValueError(f"submitters: categories {unknown} are not declared in categories")
        return self

    def district_of(self, area: str) -> str | None:
        """The district an outward code or ward code lies in, or None if none names it."""
        index: dict[str, str] | None = self.__dict__.get("_area_index")
        if index is None:
            index = {
                code: district
                for district, areas in self.districts.items()
                for code in (*areas.outward_codes, *areas.wards)
            }
            object.__setattr__(self, "_area_index", index)  # frozen model: cache once
        return index.get(area)


class Prohibition(_Strict):
    """A party or role family that must never receive some events, whatever a rule says."""

    id: str
    events: tuple[str, ...] = Field(min_length=1)
    parties: tuple[PartyId, ...] = ()
    role_families: tuple[str, ...] = ()
    when: tuple[Condition, ...] = ()
    reason: str


class Rejection(_Strict):
    """Events the partnership refuses outright (quarantined, publisher told why)."""

    id: str
    events: tuple[str, ...] = Field(min_length=1)
    when: tuple[Condition, ...] = Field(min_length=1)
    reason: str


#: The kind of a peer: another partnership's hub (federation, ``hub.federation``). A peer is a
#: party like any other for the rules (it receives what a rule names it for, under a lawful
#: basis and an agreement, and publishes what a rule lets it publish); it differs in where its
#: keys come from (pinned from the peer's ``hub keys export``, ``hub keys import --peer``,
#: never created here) and in how its inbound topic is read: a peer's transfers arrive signed
#: by the peer hub and sealed to this hub (``hub.federation.inbound``).
PEER_KIND = "peer-hub"


#: The hub as a publisher of its own workflow events (flag expiries, coordinator alerts). It is
#: never a recipient: it is not among ``Protocol.parties``, only found by ``Protocol.party``,
#: so rules may name it as a publisher and the router accepts what it signs on hub.in.hub.
HUB = Party(
    id="hub",
    name="The information sharing hub (workflow events)",
    display_name="The hub",
    kind="hub",
    signatory=False,
    roles=("hub",),
)


class Protocol(_Strict):
    """A whole sharing protocol. ``content_hash`` is the SHA-256 of the file it came from."""

    protocol: ProtocolInfo
    relevant_authorities: tuple[str, ...] = Field(
        description="party kinds that are relevant authorities under s115 CDA 1998"
    )
    parties: tuple[Party, ...]
    rules: tuple[Rule, ...]
    prohibitions: tuple[Prohibition, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    crypto: CryptoPolicy = CryptoPolicy()
    agreements: tuple[Agreement, ...] = ()
    corrections: tuple[Correction, ...] = ()
    marac: MaracPolicy | None = None
    pubwatch: PubwatchPolicy | None = None
    socjag: SocjagPolicy | None = None
    governance: GovernancePolicy | None = None
    strategic: StrategicPolicy | None = None
    asb: AsbPolicy | None = None
    content_hash: str = ""

    def corrections_for(self, event_type: str) -> tuple[Correction, ...]:
        """Art 19 corrections that cover an event type, in protocol order."""
        return tuple(c for c in self.corrections if event_type in c.events)

    def agreement(self, agreement_id: str | None) -> Agreement | None:
        """The declared agreement with this id, or ``None``."""
        if agreement_id is None:
            return None
        return next((a for a in self.agreements if a.id == agreement_id), None)

    def suspension(self, rule: Rule, today: dt.date | None) -> Agreement | None:
        """The agreement that suspends ``rule`` on ``today``, or ``None`` if it may be used.

        An agreement not in force suspends its rules whatever the day.
        """
        agreement = self.agreement(rule.agreement)
        if agreement is None:
            return None
        if not agreement.in_force:
            return agreement
        return agreement if today is not None and agreement.suspended_on(today) else None

    def party(self, party_id: str) -> Party | None:
        """The party with this id, or ``None``; ``hub`` is the hub itself (see HUB)."""
        return self._by_id.get(party_id) or (HUB if party_id == HUB.id else None)

    @property
    def _by_id(self) -> dict[str, Party]:
        cached: dict[str, Party] | None = self.__dict__.get("_party_index")
        if cached is None:
            cached = {p.id: p for p in self.parties}
            object.__setattr__(self, "_party_index", cached)  # frozen model: cache once
        return cached

    def is_peer(self, party_id: str) -> bool:
        """Whether ``party_id`` is a peer hub of this protocol (``PEER_KIND``)."""
        party = self._by_id.get(party_id)
        return party is not None and party.kind == PEER_KIND

    @property
    def peers(self) -> tuple[Party, ...]:
        """The peer hubs this protocol names, in protocol order."""
        return tuple(p for p in self.parties if p.kind == PEER_KIND)

    @property
    def party_ids(self) -> tuple[str, ...]:
        """Every declared party id."""
        return tuple(p.id for p in self.parties)

    def label(self, party_id: str) -> str:
        """The display name of a party (``Party.label``); an unknown id is shown as it is."""
        party = self.party(party_id)
        return party.label if party is not None else party_id

    def rules_for(self, event_type: str) -> tuple[Rule, ...]:
        """Rules that cover an event type, in protocol order."""
        return tuple(r for r in self.rules if event_type in r.events)
