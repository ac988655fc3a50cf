"""Seeded synthetic traffic for the North Worcestershire CSP reference deployment.

The demo, the end-to-end tests and the benchmarks need partnership traffic that looks like the
real thing (shared/domain.md) without carrying anyone's data. Everything here is fictional and
comes from one ``random.Random(seed)``, so a seed names one exact stream: a failing demo run can
be replayed event for event.

The mix follows the partnership's groups: MARAC flags (raised, then updated and withdrawn for
earlier cases kept in a small case book, as SafeLives review cycles do), SOCJAG intelligence on
the 3x5x2 model, Redditch Pub Watch bans, and the Redditch retail crime partnership's own
exclusions of shoplifters (shown to its members only: the two schemes are not linked), and
health's urgent-care path: now and then an emergency department, minor injuries unit or the
hospital safeguarding team says it viewed the flag of an open case (NHS CP-IS access
notification), which the coordinator is told of. A few
events are ones the protocol must refuse: MARAC flags from a party that may not publish them,
and bans "decided by the police", which R (Boyle) v Haverhill Pubwatch [2009] rules out. Each
event says what the hub should do with it, so a run can be checked against the protocol rather
than eyeballed.
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hub.errors import SchemaError
from hub.scenarios import fixtures as fx

__all__ = [
    "EVENT_TYPES",
    "MARAC_ACCESS",
    "MARAC_RAISED",
    "MARAC_UPDATED",
    "MARAC_WITHDRAWN",
    "PUBWATCH_BAN",
    "RETAIL_EXCLUSION",
    "SOCJAG_INTEL",
    "Scenario",
    "ScenarioEvent",
    "sample_event",
]

MARAC_RAISED = "uk.csp.marac.flag.raised.v1"
MARAC_UPDATED = "uk.csp.marac.flag.updated.v1"
MARAC_WITHDRAWN = "uk.csp.marac.flag.withdrawn.v1"
SOCJAG_INTEL = "uk.csp.socjag.intel.v1"
PUBWATCH_BAN = "uk.csp.pubwatch.ban.v1"
RETAIL_EXCLUSION = "uk.csp.retail.exclusion.v1"
MARAC_ACCESS = "uk.csp.marac.access.v1"
#: Every event type a scenario publishes (acknowledgements come from recipients, not here).
EVENT_TYPES = (
    MARAC_RAISED,
    MARAC_UPDATED,
    MARAC_WITHDRAWN,
    SOCJAG_INTEL,
    PUBWATCH_BAN,
    RETAIL_EXCLUSION,
    MARAC_ACCESS,
)

_MARAC_PUBLISHERS = ("marac.north-worcs", "west-mercia-police")
#: Parties that hold MARAC flags but may not raise them: the protocol must reject these. The
#: ICB is a MARAC member yet still not a publisher, which makes the rejection worth showing.
_UNAUTHORISED_MARAC = (
    "bromsgrove-dc.housing",
    "redditch-bc.housing-repairs",
    "wyre-forest-dc.housing",
    "hw-icb",
)
_POLICE = "west-mercia-police"
#: urgent-care settings that hold every flag (rule marac-flag-health-urgent-care), the unit
#: where a flag is viewed, and who views it (a role, never a name)
_URGENT_CARE = {
    "wah-nhs.alexandra-ed": "Emergency department, Alexandra Hospital, Redditch",
    "wah-nhs.kidderminster-miu": "Minor injuries unit, Kidderminster Hospital",
    "wah-nhs.safeguarding": "Hospital safeguarding team and IDVA, Worcestershire Royal Hospital",
}
_VIEWERS = ("ED triage nurse", "ED consultant", "MIU practitioner", "Hospital IDVA")
#: how often an open case's flag is viewed in urgent care, per event, and how old the flag
#: must be (so it was routed, and the setting holds it, long before the notice)
_VIEW_RATE = 0.04
_VIEW_AFTER = dt.timedelta(days=7)
_PREMISES = {
    "pubwatch.redditch.crown-inn": "The Crown Inn, Redditch",
    "pubwatch.redditch.rising-sun": "The Rising Sun, Redditch",
}
#: Redditch business crime reduction partnership members, and the shops they report from
_SHOPS = {
    "bcrp.redditch.kingfisher-retail": "Kingfisher Centre, Redditch",
    "bcrp.redditch.town-centre-retail": "Alcester Street, Redditch",
}
#: SOCJAG members a handling-code C item may name, by category; named roles and agencies come
#: first because OFFICIAL-SENSITIVE items never reach department-wide feeds.
_SHARE_WITH = {
    "county_lines": ("probation", "worcestershire-cc.childrens-services", "community-safety"),
    "modern_slavery": ("hwfrs", "probation", "wrs", "community-safety"),
    "child_exploitation": ("worcestershire-cc.childrens-services", "probation"),
    "ocg": ("probation", "wrs", "community-safety"),
    "illegal_vapes": ("wrs", "community-safety"),
    "other": ("hwfrs", "wrs", "community-safety"),
}
_COMMUNITY_SAFETY = {
    "redditch": "redditch-bc.community-safety",
    "bromsgrove": "bromsgrove-dc.community-safety",
    "wyre_forest": "wyre-forest-dc.community-safety",
}
_DEPARTMENT_WIDE = frozenset({"wrs", *_COMMUNITY_SAFETY.values()})
_REVIEW_AFTER = dt.timedelta(days=182)  # MARAC flags are reviewed about six months on
_KINDS = ("marac", "intel", "ban")  # reference series, numbered per year
_TUESDAY = 1  # the fictional MARAC sits on Tuesdays


_DASH_THRESHOLD = 14  # SafeLives visible high risk, as the reference protocol sets it
_RATIONALES = (
    "Coercive control escalating since separation; victim too frightened to finish the DASH.",
    "Third police call-out in ten weeks; children present each time.",
    "Perpetrator released from custody this week and has made threats to the victim's family.",
    "Health visitor concerns: isolation, injuries explained away, pregnancy.",
)


class ScenarioEvent(BaseModel):
    """One event of the scenario, with what the hub should do with it.

    Attributes:
        publisher: Party id that publishes the event.
        event_type: CloudEvents type, which names the payload schema.
        data: JSON-like payload (dates as ISO strings), as ``hub publish --data`` takes it.
        key: Kafka key (case, intel or ban reference) so one case stays on one partition.
        subject: Pseudonymous reference for ``ce_subject``; never a name.
        expect: ``routed`` when the protocol accepts the event, ``rejected`` when it must not.
        note: Short description for the demo log; carries no personal data.
    """

    model_config = ConfigDict(frozen=True)

    publisher: str
    event_type: str
    data: dict[str, Any]
    key: str
    subject: str | None
    expect: Literal["routed", "rejected"]
    note: str


class Scenario:
    """A deterministic stream of North Worcestershire partnership traffic.

    Args:
        seed: Seeds the one random generator; the same seed always gives the same stream.
        start: The first day of traffic (a Monday by default); the clock moves on by weekdays.
    """

    def __init__(self, *, seed: int = 7, start: dt.date = dt.date(2026, 11, 23)) -> None:
        self.seed = seed
        self.start = start

    def events(self, count: int) -> Iterator[ScenarioEvent]:
        """Yield ``count`` events; each call replays the stream from the start.

        Because every call starts afresh, ``events(n)`` is a prefix of ``events(n + k)``.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count: expected 0 or more, got {count}")
        run = _Run(self.seed, self.start)
        for _ in range(count):
            yield run.next()


def sample_event(
    event_type: str, *, seed: int = 1, where: Mapping[str, Any] | None = None
) -> ScenarioEvent:
    """The first routed event of a type in a seed's stream, optionally matching fields.

    Taking samples from the stream itself (rather than building them apart) keeps examples,
    tests and the demo in step: an update or withdrawal refers to a case raised before it.

    Args:
        event_type: One of ``EVENT_TYPES``.
        seed: Scenario seed to draw from.
        where: Dotted payload paths and the values they must hold, e.g.
            ``{"address.district": "redditch"}`` or ``{"handling_code": "C"}``.

    Raises:
        SchemaError: The type is not one a scenario publishes, or no event matches.
    """
    if event_type not in EVENT_TYPES:
        raise SchemaError(
            f"no scenario events of this type: expected one of {', '.join(EVENT_TYPES)}, "
            f"got {event_type!r}"
        )
    wanted = dict(where or {})
    for event in Scenario(seed=seed).events(5000):
        if event.event_type == event_type and event.expect == "routed":
            if all(_get(event.data, path) == value for path, value in wanted.items()):
                return event
    raise SchemaError(f"no routed {event_type} matching {wanted} in 5000 events of seed {seed}")


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _add_months(day: dt.date, months: int) -> dt.date:
    """Same day of the month ``months`` on, clamped (31 January + 1 month is 28 February)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


@dataclass
class _Case:
    """An open MARAC case in the book: who raised it and its latest flag."""

    publisher: str
    flag: dict[str, Any]
    raised_on: dt.date


class _Run:
    """The state of one pass over a scenario: generator, clock, counters and case book."""

    def __init__(self, seed: int, start: dt.date) -> None:
        self.rng = random.Random(seed)
        self.today = start
        # Numbering restarts each year; the first year starts part-way, as a real register would.
        self.counters = {(kind, start.year): self.rng.randint(1, 150) for kind in _KINDS}
        self.photos = self.rng.randint(1, 200)
        self.refs: set[str] = set()
        self.cases: list[_Case] = []
        self.closed: list[tuple[str, dt.date]] = []  # subject refs withdrawn, for repeats
        self.nominals: list[str] = []  # SOCJAG subject refs seen before
        self.first = True
        # Health's views come from a generator of their own, so the rest of the stream (every
        # event, and the clock) is the same as it was before views were part of it.
        self.health = random.Random(f"health/{seed}")

    def next(self) -> ScenarioEvent:
        view = self._view()
        if view is not None:
            return view
        self._tick()
        (make,) = self.rng.choices(
            (self._marac, self._intel, self._ban, self._exclusion), weights=(35, 30, 25, 8)
        )
        return make()

    # -- helpers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        """Advance the clock to the next weekday now and then; agencies publish on weekdays."""
        if self.first:
            self.first = False
            return
        if self.rng.random() < 0.25:
            self.today += dt.timedelta(days=1)
            while self.today.weekday() >= 5:
                self.today += dt.timedelta(days=1)

    def _ref(self, kind: str, template: str, *, year: int) -> str:
        number = self.counters.get((kind, year), 0) + 1
        self.counters[(kind, year)] = number
        return template.format(n=number, year=year)

    def _subject_ref(self) -> str:
        while True:
            ref = f"SUBJ-{self.rng.getrandbits(24):06X}"
            if ref not in self.refs:
                self.refs.add(ref)
                return ref

    def _address(self, district: str | None = None) -> dict[str, Any]:
        towns = [t for t in fx.TOWNS if district in (None, t.district)]
        (town,) = self.rng.choices(towns, weights=[t.weight for t in towns])
        letters = "".join(self.rng.choices(fx.POSTCODE_LETTERS, k=2))
        postcode = f"{self.rng.choice(town.outcodes)} {self.rng.randint(1, 9)}{letters}"
        return {
            "line1": f"{self.rng.randint(1, 140)} {self.rng.choice(fx.STREETS)}",
            "town": town.name,
            "postcode": postcode,
            "district": town.district,
        }

    def _contact(self, district: str, *, other_than: str | None = None) -> dict[str, Any]:
        code = "01562" if district == "wyre_forest" else "01527"
        pool = [c for c in fx.MARAC_CONTACTS[code] if c.name != other_than]
        return self.rng.choice(pool)._asdict()

    # -- MARAC -----------------------------------------------------------------------------

    def _marac(self) -> ScenarioEvent:
        updatable = [c for c in self.cases if c.raised_on < self.today]
        closable = [c for c in self.cases if (self.today - c.raised_on).days >= 14]
        roll = self.rng.random()
        if roll < 0.18 and closable:
            return self._withdraw(self.rng.choice(closable))
        if roll < 0.42 and updatable:
            return self._update(self.rng.choice(updatable))
        return self._raise()

    def _raise(self) -> ScenarioEvent:
        rng = self.rng
        # SafeLives criteria: 14+ DASH ticks; professional judgement (may raise, never lower);
        # escalation (commonly 3 incidents in 12 months); repeat within 12 months of the last.
        reason = rng.choices(
            ("dash", "professional_judgement", "escalation", "repeat"), weights=(60, 15, 12, 13)
        )[0]
        recent = [s for s, day in self.closed if (self.today - day).days < 365]
        if reason == "repeat" and not recent:
            reason = "dash"  # a repeat needs an earlier referral of the same subject
        subject_ref = rng.choice(recent) if reason == "repeat" else self._subject_ref()
        score: int | None = {
            "dash": rng.choice((14, 14, 15, 15, 16, 17, 18, 19, 21)),
            "professional_judgement": rng.randint(7, 13),
            "escalation": rng.randint(9, 16),
            "repeat": rng.choice((None, rng.randint(8, 18))),
        }[reason]
        # professional judgement may raise a level, never lower a DASH-based one
        lowerable = score is None or score < _DASH_THRESHOLD
        risk = "medium" if reason == "repeat" and lowerable and rng.random() < 0.3 else "high"
        rationale = (
            rng.choice(_RATIONALES) if reason in ("professional_judgement", "escalation") else None
        )
        invalid = rng.random() < 0.03  # a referral that does not meet the criteria
        if invalid:
            reason, score, rationale = "dash", rng.randint(8, 13), None
        address = self._address()
        marac_date = self.today - dt.timedelta(days=(self.today.weekday() - _TUESDAY) % 7)
        case_ref = self._ref("marac", "MARAC-NW-{year}-{n:04d}", year=marac_date.year)
        markers = rng.choices((["property", "person"], ["person"], ["property"]), (80, 12, 8))[0]
        flag = {
            "case_ref": case_ref,
            "subject_ref": subject_ref,
            "address": address,
            "risk_level": risk,
            "referral_reason": reason,
            "dash_score": score,
            "marac_date": marac_date.isoformat(),
            "review_date": (marac_date + _REVIEW_AFTER).isoformat(),
            "contact": self._contact(address["district"]),
            "markers": list(markers),
            "notes": rng.choice(fx.MARAC_NOTES),
            "rationale": rationale,
        }
        where = f"{address['town']} ({address['district']})"
        if invalid:
            return self._event(
                rng.choices(_MARAC_PUBLISHERS, weights=(80, 20))[0],
                MARAC_RAISED,
                flag,
                case_ref,
                subject_ref,
                f"MARAC referral on DASH {score}, under the threshold of {_DASH_THRESHOLD}",
                expect="rejected",
            )
        if rng.random() < 0.04:
            publisher = rng.choice(_UNAUTHORISED_MARAC)
            return self._event(
                publisher,
                MARAC_RAISED,
                flag,
                case_ref,
                subject_ref,
                f"MARAC flag raised by {publisher}, not a permitted publisher",
                expect="rejected",
            )
        publisher = rng.choices(_MARAC_PUBLISHERS, weights=(80, 20))[0]
        self.cases.append(_Case(publisher, flag, self.today))
        score_text = f"DASH {score}" if score is not None else "no DASH"
        return self._event(
            publisher,
            MARAC_RAISED,
            flag,
            case_ref,
            subject_ref,
            f"MARAC flag raised: {where}, {reason}, {score_text}, {risk} risk",
        )

    def _view(self) -> ScenarioEvent | None:
        """An urgent-care setting viewed the flag of an open case (CP-IS access notice)."""
        if self.first or self.health.random() >= _VIEW_RATE:
            return None
        old = [c for c in self.cases if c.raised_on <= self.today - _VIEW_AFTER]
        if not old:
            return None
        case = self.health.choice(old)
        setting = self.health.choice(sorted(_URGENT_CARE))
        at = dt.datetime.combine(self.today, dt.time(self.health.randint(0, 23)), dt.UTC)
        data = {
            "case_ref": case.flag["case_ref"],
            "subject_ref": case.flag["subject_ref"],
            "viewed_event_id": None,
            "viewed_at": (at + dt.timedelta(minutes=self.health.randint(0, 59))).isoformat(),
            "setting": _URGENT_CARE[setting],
            "viewed_by": self.health.choice(_VIEWERS),
        }
        return self._event(
            setting,
            MARAC_ACCESS,
            data,
            case.flag["case_ref"],
            case.flag["subject_ref"],
            f"MARAC flag viewed in urgent care ({setting}) for a case raised "
            f"{case.raised_on.isoformat()}",
        )

    def _update(self, case: _Case) -> ScenarioEvent:
        flag = copy.deepcopy(case.flag)
        kind = self.rng.choice(tuple(fx.UPDATE_REASONS))
        district = flag["address"]["district"]
        if kind == "review":
            flag["review_date"] = (self.today + _REVIEW_AFTER).isoformat()
        elif kind == "contact":
            flag["contact"] = self._contact(district, other_than=flag["contact"]["name"])
        elif kind == "moved":
            flag["address"] = self._address(district)
            flag["markers"] = ["property", "person"]
        else:
            flag["risk_level"] = self.rng.choice(("high", "medium"))
            score = flag.get("dash_score")
            if flag["risk_level"] != "high" and score is not None and score >= _DASH_THRESHOLD:
                # professional judgement never lowers a DASH level (SafeLives): a lower risk
                # comes with a new DASH assessment under the threshold (no draw, so the
                # stream is otherwise unchanged)
                flag["dash_score"] = _DASH_THRESHOLD - 4
        case.flag = flag
        data = {**flag, "change_reason": fx.UPDATE_REASONS[kind]}
        return self._event(
            case.publisher,
            MARAC_UPDATED,
            data,
            flag["case_ref"],
            flag["subject_ref"],
            f"MARAC flag updated ({kind}) for a case raised {case.raised_on.isoformat()}",
        )

    def _withdraw(self, case: _Case) -> ScenarioEvent:
        flag = case.flag
        if flag["risk_level"] != "high":
            reason = "risk_reduced"
        else:
            reasons = tuple(fx.WITHDRAWAL_NOTES)
            reason = self.rng.choices(reasons, weights=(30, 45, 20, 5))[0]
        self.cases.remove(case)
        self.closed.append((flag["subject_ref"], self.today))
        data = {
            "case_ref": flag["case_ref"],
            "subject_ref": flag["subject_ref"],
            "address": flag["address"],
            "withdrawn_on": self.today.isoformat(),
            "reason": reason,
            "contact": flag["contact"],
            "notes": fx.WITHDRAWAL_NOTES[reason],
        }
        return self._event(
            case.publisher,
            MARAC_WITHDRAWN,
            data,
            flag["case_ref"],
            flag["subject_ref"],
            f"MARAC flag withdrawn ({reason}) for a case raised {case.raised_on.isoformat()}",
        )

    # -- SOCJAG ----------------------------------------------------------------------------

    def _intel(self) -> ScenarioEvent:
        rng = self.rng
        category = rng.choice(tuple(fx.INTEL_SUMMARIES))
        district = rng.choices(tuple(fx.INTEL_AREAS), weights=(35, 25, 30, 5, 5))[0]
        subjects: list[str] = []
        for _ in range(rng.choices((0, 1, 2, 3), weights=(15, 45, 30, 10))[0]):
            known = [s for s in self.nominals if s not in subjects]
            if known and rng.random() < 0.4:
                subjects.append(rng.choice(known))
            else:
                subjects.append(self._subject_ref())
                self.nominals.append(subjects[-1])
        handling = rng.choices(("P", "C"), weights=(80, 20))[0]
        classification = rng.choices(("OFFICIAL", "OFFICIAL-SENSITIVE"), weights=(80, 20))[0]
        conditions: dict[str, Any] | None = None
        if handling == "C":
            pool = [
                _COMMUNITY_SAFETY.get(district, "probation") if p == "community-safety" else p
                for p in _SHARE_WITH[category]
            ]
            if classification == "OFFICIAL-SENSITIVE":
                pool = [p for p in pool if p not in _DEPARTMENT_WIDE] or ["probation"]
            pool = list(dict.fromkeys(pool))
            share = rng.sample(pool, k=min(len(pool), rng.randint(1, 2)))
            conditions = {"conditions": rng.choice(fx.HANDLING_CONDITIONS), "share_with": share}
        intel_ref = self._ref("intel", "INT-{year}-{n:04d}", year=self.today.year)
        data = {
            "intel_ref": intel_ref,
            "subject_refs": subjects,
            "category": category,
            "location": {"area": rng.choice(fx.INTEL_AREAS[district]), "district": district},
            "source_grade": rng.choices((1, 2, 3), weights=(35, 50, 15))[0],
            "intel_grade": rng.choices("ABCDE", weights=(15, 35, 30, 15, 5))[0],
            "handling_code": handling,
            "handling_conditions": conditions,
            "classification": classification,
            "summary": rng.choice(fx.INTEL_SUMMARIES[category]),
        }
        grade = f"{data['source_grade']}{data['intel_grade']}{handling}"
        return self._event(
            _POLICE,
            SOCJAG_INTEL,
            data,
            intel_ref,
            subjects[0] if subjects else None,
            f"SOCJAG intel: {category} in {district}, graded {grade}, {classification}",
        )

    # -- Pub Watch -------------------------------------------------------------------------

    def _ban(self) -> ScenarioEvent:
        rng = self.rng
        publisher = rng.choice(tuple(_PREMISES))
        incident = rng.choices(
            ("violence", "disorder", "drugs", "theft", "other"), weights=(30, 25, 15, 20, 10)
        )[0]
        # Typical ban 12 months; 3-6 months for a first violent incident in some schemes.
        months = rng.choices((3, 6, 9, 12), weights=(15, 25, 10, 50))[0]
        decided_by = rng.choices(("scheme_board", "scheme_chair", "police"), (75, 23, 2))[0]
        self.photos += 1
        photo = f"photo:pw-redditch-{self.photos:04d}" if rng.random() < 0.9 else None
        born = self.today - dt.timedelta(days=rng.randint(18 * 366, 55 * 365))
        ban_ref = self._ref("ban", "PW-RDC-{year}-{n:03d}", year=self.today.year)
        data = {
            "ban_ref": ban_ref,
            "scheme": "redditch",
            "subject": {
                "name": f"{rng.choice(fx.BAN_FIRST_NAMES)} {rng.choice(fx.BAN_SURNAMES)}",
                "date_of_birth": born.isoformat(),
                "photo_ref": photo,
            },
            "premises": _PREMISES[publisher],
            "incident_type": incident,
            "ban_start": self.today.isoformat(),
            "ban_end": _add_months(self.today, months).isoformat(),
            "decided_by": decided_by,
        }
        if decided_by == "police":
            note = f"Pub Watch ban ({incident}) marked as decided by the police: must be rejected"
        else:
            note = f"Pub Watch ban ({incident}), {months} months, decided by {decided_by}"
        return self._event(
            publisher,
            PUBWATCH_BAN,
            data,
            ban_ref,
            ban_ref,  # the banned person has no pseudonym: the ban reference stands in
            note,
            expect="rejected" if decided_by == "police" else "routed",
        )

    # -- the retail crime partnership ------------------------------------------------------

    def _exclusion(self) -> ScenarioEvent:
        """A shop's exclusion, decided by the partnership's board: mostly shoplifting."""
        rng = self.rng
        publisher = rng.choice(tuple(_SHOPS))
        incident = rng.choices(
            ("theft", "abuse_of_staff", "violence", "criminal_damage", "other"),
            weights=(70, 15, 5, 5, 5),
        )[0]
        months = rng.choices((6, 12), weights=(30, 70))[0]
        self.photos += 1
        born = self.today - dt.timedelta(days=rng.randint(18 * 366, 60 * 365))
        ref = self._ref("exclusion", "BCRP-RDC-{year}-{n:03d}", year=self.today.year)
        data = {
            "ban_ref": ref,
            "scheme": "redditch",
            "subject": {
                "name": f"{rng.choice(fx.BAN_FIRST_NAMES)} {rng.choice(fx.BAN_SURNAMES)}",
                "date_of_birth": born.isoformat(),
                "photo_ref": f"photo:bcrp-redditch-{self.photos:04d}",
            },
            "premises": _SHOPS[publisher],
            "incident_type": incident,
            "incident_date": (self.today - dt.timedelta(days=rng.randint(1, 14))).isoformat(),
            "ban_start": self.today.isoformat(),
            "ban_end": _add_months(self.today, months).isoformat(),
            "decided_by": "scheme_board",
        }
        note = f"retail exclusion ({incident}), {months} months, decided by the scheme board"
        return self._event(publisher, RETAIL_EXCLUSION, data, ref, ref, note)

    @staticmethod
    def _event(
        publisher: str,
        event_type: str,
        data: dict[str, Any],
        key: str,
        subject: str | None,
        note: str,
        *,
        expect: Literal["routed", "rejected"] = "routed",
    ) -> ScenarioEvent:
        return ScenarioEvent(
            publisher=publisher,
            event_type=event_type,
            data=copy.deepcopy(data),
            key=key,
            subject=subject,
            expect=expect,
            note=note,
        )
