"""``hub policy check``: prove a sharing protocol safe before any event is routed by it.

The engine default-denies whatever a protocol does not permit, but it cannot tell a typo from
an intention: a misspelt party id, a field the schema does not have or two rules that disagree
all fail silently at run time. The checker finds these statically, each at its file and line,
so a protocol is rejected before it is relied on (ICO Data Sharing Code: documented, reviewed
decisions; s115 CDA 1998: disclosure only to relevant authorities).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from hub.errors import ProtocolError
from hub.policies import durations
from hub.policies.engine import _TEMPLATE
from hub.policies.loader import LineIndex, _index, load_protocol_with_lines
from hub.policies.model import (
    HUB,
    PEER_KIND,
    Condition,
    Party,
    Prohibition,
    Protocol,
    RecipientClause,
    Rejection,
    Rule,
)
from hub.schemas.codec import SchemaRegistry

__all__ = ["CheckReport", "Finding", "check_protocol"]

_S115 = re.compile(r"\bs\.?\s*115\b|\bsection\s+115\b", re.IGNORECASE)
_REVIEW_NOTICE = dt.timedelta(days=30)
_AGREEMENT_ALERT = "uk.csp.hub.agreement.alert.v1"
_SUBMISSION = "uk.csp.strategic.submission.v1"
_DATASET = "uk.csp.strategic.dataset.v1"


class Finding(BaseModel):
    """One problem: where (``file:line`` and protocol path), a stable code, and what to do."""

    model_config = ConfigDict(frozen=True)

    location: str
    path: str
    code: str
    message: str


class CheckReport(BaseModel):
    """Every finding for one protocol file; any error makes the protocol unusable."""

    file: str
    errors: list[Finding] = []
    warnings: list[Finding] = []

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not block)."""
        return not self.errors

    def lines(self) -> list[str]:
        """``file:line: error|warning: code: message`` lines, errors first."""
        return [f"{f.location}: error: {f.code}: {f.message}" for f in self.errors] + [
            f"{f.location}: warning: {f.code}: {f.message}" for f in self.warnings
        ]


def check_protocol(
    path: Path, registry: SchemaRegistry, *, today: dt.date | None = None
) -> CheckReport:
    """Check a protocol file; load failures become findings instead of exceptions.

    Args:
        path: the protocol YAML file.
        registry: the event schemas the protocol's event types and fields must exist in.
        today: the date review-date warnings are measured from (default: today).

    Returns:
        The report; ``report.ok`` is False when the protocol must not be used.
    """
    try:
        protocol, index = load_protocol_with_lines(path)
    except ProtocolError as exc:
        return CheckReport(file=str(path), errors=_load_findings(path, exc))
    checker = _Checker(protocol, index, registry)
    checker.run(today or dt.date.today())
    return CheckReport(
        file=str(path),
        errors=_by_line(checker.errors, index),
        warnings=_by_line(checker.warnings, index),
    )


def _by_line(findings: list[Finding], index: LineIndex) -> list[Finding]:
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (index.line(f.path), f.path, f.code))


def _load_findings(path: Path, exc: ProtocolError) -> list[Finding]:
    """Turn a loader failure into findings, one per pydantic error, each at its line."""
    cause = exc.__cause__
    if isinstance(cause, ValidationError):
        index = _reindex(path)
        findings = []
        for err in cause.errors():
            loc = ""
            for part in err["loc"]:
                loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
            findings.append(
                Finding(location=index.where(loc), path=loc, code="invalid", message=err["msg"])
            )
        return findings
    if isinstance(cause, YAMLError):
        mark = getattr(cause, "problem_mark", None) or getattr(cause, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(cause, "problem", None) or str(cause).splitlines()[0]
        return [Finding(location=f"{path}:{line}", path="", code="yaml-syntax", message=problem)]
    code = "unreadable" if isinstance(cause, OSError) else "invalid"
    return [Finding(location=f"{path}:1", path="", code=code, message=str(exc))]


def _reindex(path: Path) -> LineIndex:
    """Line numbers for a file the loader parsed but pydantic rejected."""
    lines: dict[str, int] = {}
    _index(YAML(typ="rt").load(path.read_bytes()), "", lines)
    return LineIndex(path, lines)


# --- static reasoning about conditions and selections ------------------------------------


def _role_pattern(role: str) -> re.Pattern[str]:
    """A role template (``pubwatch-member:{scheme}``) as the set of roles it can become."""
    parts = _TEMPLATE.split(role)
    # split() alternates literal text and placeholder names
    return re.compile("".join(re.escape(p) if i % 2 == 0 else ".+" for i, p in enumerate(parts)))


def _holders(protocol: Protocol, role: str) -> list[Party]:
    pattern = _role_pattern(role)
    return [p for p in protocol.parties if any(pattern.fullmatch(r) for r in p.roles)]


def _party_may_pass(conds: Iterable[Condition], party: Party) -> bool:
    """False only when a literal party condition provably fails for this party."""
    for cond in conds:
        if cond.party is None or cond.event_dependent:
            continue  # event-dependent: cannot be decided without an event
        value = getattr(party, cond.party)
        if cond.equals is not None and value != cond.equals:
            return False
        if cond.in_ is not None and value not in cond.in_:
            return False
        if cond.not_in is not None and value in cond.not_in:
            return False
    return True


def _party_provably_passes(conds: Iterable[Condition], party: Party) -> bool:
    """True only when every party condition is literal and holds for this party."""
    party_conds = [c for c in conds if c.party is not None]
    if any(c.event_dependent for c in party_conds):
        return False
    return _party_may_pass(party_conds, party)


def _selectable(protocol: Protocol, clause: RecipientClause) -> Iterator[tuple[Party, str]]:
    """Parties a clause can select, with the clause sub-path that selects them."""
    for k, pid in enumerate(clause.parties):
        party = protocol.party(pid)
        if party is not None and _party_may_pass(clause.when, party):
            yield party, f"parties[{k}]"
    for k, role in enumerate(clause.roles):
        for party in _holders(protocol, role):
            if _party_may_pass(clause.when, party):
                yield party, f"roles[{k}]"


def _publishers(protocol: Protocol, rule: Rule) -> set[str]:
    ids = {pid for pid in rule.publishers.parties if protocol.party(pid) is not None}
    for role in rule.publishers.roles:
        ids.update(p.id for p in _holders(protocol, role))
    return ids


def _excludes(a: Condition, b: Condition) -> bool:
    """True when no event satisfies both field conditions."""
    if a.field != b.field or a.field is None:
        return False
    for x, y in ((a, b), (b, a)):
        if x.equals is not None:
            if y.equals is not None and x.equals != y.equals:
                return True
            if y.in_ is not None and x.equals not in y.in_:
                return True
            if y.not_in is not None and x.equals in y.not_in:
                return True
        if x.in_ is not None:
            if y.in_ is not None and not set(x.in_) & set(y.in_):
                return True
            if y.not_in is not None and set(x.in_) <= set(y.not_in):
                return True
    return False


def _disjoint(a: Sequence[Condition], b: Sequence[Condition]) -> bool:
    return any(_excludes(x, y) for x in a for y in b)


def _implied(cond: Condition, given: Sequence[Condition]) -> bool:
    """True when the field conditions ``given`` guarantee ``cond`` (same field, literal ops)."""
    for g in given:
        if g.field is None or g.field != cond.field:
            continue
        values: set[Any] | None = (
            {g.equals} if g.equals is not None else set(g.in_) if g.in_ is not None else None
        )
        if values is None:
            if cond.not_in is not None and g.not_in is not None:
                if set(cond.not_in) <= set(g.not_in):
                    return True
            continue
        if cond.equals is not None and values == {cond.equals}:
            return True
        if cond.in_ is not None and values <= set(cond.in_):
            return True
        if cond.not_in is not None and not values & set(cond.not_in):
            return True
    return False


def _hint(word: str, candidates: Iterable[str]) -> str:
    """A "did you mean" suffix: most findings are typos."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_conds(conds: Iterable[Condition]) -> list[Condition]:
    return [c for c in conds if c.field is not None]


# --- the checks ----------------------------------------------------------------------------


class _Checker:
    """Runs every check over one loaded protocol, collecting findings."""

    def __init__(self, protocol: Protocol, index: LineIndex, registry: SchemaRegistry) -> None:
        self.p = protocol
        self.index = index
        self.registry = registry
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []

    def error(self, path: str, code: str, message: str) -> None:
        self.errors.append(
            Finding(location=self.index.where(path), path=path, code=code, message=message)
        )

    def warn(self, path: str, code: str, message: str) -> None:
        self.warnings.append(
            Finding(location=self.index.where(path), path=path, code=code, message=message)
        )

    def run(self, today: dt.date) -> None:
        self.check_ids()
        self.check_party_refs()
        self.check_event_level_conditions()
        self.check_events_and_fields()
        for i, rule in enumerate(self.p.rules):
            self.check_rule(i, rule)
        self.check_overlaps()
        self.check_prohibition_families()
        self.check_review(today)
        self.check_agreements(today)
        self.check_workflows()
        self.check_socjag()
        self.check_strategic()
        self.check_cancelled_rules()

    # ids -------------------------------------------------------------------------------

    def check_ids(self) -> None:
        """Ids are how decisions and audit records name a party or rule: they must be unique."""
        self._unique([(f"parties[{i}]", p.id) for i, p in enumerate(self.p.parties)], "party")
        # rules, prohibitions and rejections share one namespace: a Decision's rule_id
        self._unique(
            [(f"rules[{i}]", r.id) for i, r in enumerate(self.p.rules)]
            + [(f"prohibitions[{i}]", r.id) for i, r in enumerate(self.p.prohibitions)]
            + [(f"rejections[{i}]", r.id) for i, r in enumerate(self.p.rejections)],
            "rule",
        )

    def _unique(self, items: list[tuple[str, str]], what: str) -> None:
        first: dict[str, str] = {}
        for path, ident in items:
            if ident in first:
                self.error(
                    f"{path}.id",
                    "duplicate-id",
                    f"{what} id {ident!r} is already used at {self.index.where(first[ident])}",
                )
            else:
                first[ident] = path

    # parties ---------------------------------------------------------------------------

    def _known_party(self, path: str, pid: Any) -> Party | None:
        party = self.p.party(str(pid))
        if party is None:
            hint = _hint(str(pid), self.p.party_ids)
            self.error(path, "unknown-party", f"party {pid!r} is not declared in parties{hint}")
        return party

    def _party_conditions(self, base: str, conds: Sequence[Condition]) -> None:
        for k, cond in enumerate(conds):
            if cond.party != "id":
                continue
            here = f"{base}.when[{k}]"
            if cond.equals is not None:
                self._known_party(f"{here}.equals", cond.equals)
            for op, values in (("in", cond.in_), ("not_in", cond.not_in)):
                for j, pid in enumerate(values or ()):
                    self._known_party(f"{here}.{op}[{j}]", pid)

    def check_party_refs(self) -> None:
        """Every party id named literally must be declared; senders and receivers must sign."""
        for i, rule in enumerate(self.p.rules):
            base = f"rules[{i}]"
            for k, pid in enumerate(rule.publishers.parties):
                party = self._known_party(f"{base}.publishers.parties[{k}]", pid)
                # the hub publishes its workflow events under the protocol it enforces
                if party is not None and not party.signatory and party is not HUB:
                    self.error(
                        f"{base}.publishers.parties[{k}]",
                        "not-signatory",
                        f"publisher {pid} is not a signatory of the protocol",
                    )
            self._party_conditions(base, rule.when)
            for c, clause in enumerate(rule.recipients):
                cbase = f"{base}.recipients[{c}]"
                for k, pid in enumerate(clause.parties):
                    if pid == HUB.id:
                        self.error(
                            f"{cbase}.parties[{k}]",
                            "hub-not-recipient",
                            "the hub publishes workflow events but never receives: remove 'hub'",
                        )
                        continue
                    party = self._known_party(f"{cbase}.parties[{k}]", pid)
                    if party is not None and not party.signatory:
                        self.error(
                            f"{cbase}.parties[{k}]",
                            "not-signatory",
                            f"recipient {pid} is not a signatory of the protocol",
                        )
                self._party_conditions(cbase, clause.when)
        for i, prohibition in enumerate(self.p.prohibitions):
            for k, pid in enumerate(prohibition.parties):
                self._known_party(f"prohibitions[{i}].parties[{k}]", pid)
            self._party_conditions(f"prohibitions[{i}]", prohibition.when)
        for i, rejection in enumerate(self.p.rejections):
            self._party_conditions(f"rejections[{i}]", rejection.when)

    def check_event_level_conditions(self) -> None:
        """Rule-level and rejection conditions are tested without a party: one never holds.

        The engine evaluates them once per event (party ``None``), so a ``party:`` condition
        there silently disables the rule or rejection; it belongs in a recipient clause.
        """
        places = [(f"rules[{i}]", r.when) for i, r in enumerate(self.p.rules)]
        places += [(f"rejections[{i}]", r.when) for i, r in enumerate(self.p.rejections)]
        for base, conds in places:
            for k, cond in enumerate(conds):
                if cond.party is not None:
                    self.error(
                        f"{base}.when[{k}].party",
                        "party-condition-out-of-place",
                        f"condition on party.{cond.party} is evaluated without a party here, so "
                        "it never holds: move it to a recipient clause's when",
                    )

    def _roles(self, path: str, role: str, who: str, conds: Sequence[Condition] = ()) -> None:
        holders = _holders(self.p, role)
        if not holders:
            held = sorted({r for p in self.p.parties for r in p.roles})
            hint = _hint(role, held)
            self.error(path, "unknown-role", f"no party holds role {role!r}{hint}")
        outsiders = [p.id for p in holders if not p.signatory and _party_may_pass(conds, p)]
        if outsiders:
            self.error(
                path,
                "not-signatory",
                f"{who} role {role!r} selects non-signatories: {', '.join(outsiders)}",
            )

    def check_prohibition_families(self) -> None:
        """A misspelt family in a prohibition would silently protect nobody."""
        for i, prohibition in enumerate(self.p.prohibitions):
            for k, family in enumerate(prohibition.role_families):
                if not any(p.has_role_family(family) for p in self.p.parties):
                    self.error(
                        f"prohibitions[{i}].role_families[{k}]",
                        "unknown-role",
                        f"no party holds a role of family {family!r}",
                    )

    # events and fields -----------------------------------------------------------------

    def _events(self, base: str, events: Sequence[str]) -> list[str]:
        known = []
        for k, event_type in enumerate(events):
            if event_type in self.registry:
                known.append(event_type)
            else:
                hint = _hint(event_type, self.registry.types)
                self.error(
                    f"{base}.events[{k}]",
                    "unknown-event-type",
                    f"event type {event_type!r} has no schema{hint}",
                )
        return known

    def _field(self, path: str, field: str, types: Sequence[str]) -> None:
        missing = [t for t in types if field not in self.registry.field_paths(t)]
        if missing:
            every = sorted(set().union(*(self.registry.field_paths(t) for t in types)))
            hint = _hint(field, every)
            self.error(
                path,
                "unknown-field",
                f"field {field!r} is not in the schema of {', '.join(missing)}{hint}",
            )

    def _cond_fields(self, base: str, conds: Sequence[Condition], types: Sequence[str]) -> None:
        for k, cond in enumerate(conds):
            for key in ("field", "equals_field", "in_field"):
                value = getattr(cond, key)
                if value is not None:
                    self._field(f"{base}.when[{k}].{key}", value, types)

    def _template_fields(self, path: str, role: str, types: Sequence[str]) -> None:
        for placeholder in _TEMPLATE.findall(role):
            self._field(path, placeholder, types)

    def check_events_and_fields(self) -> None:
        """Types must have schemas; every field named must exist in every type it covers."""
        for i, rule in enumerate(self.p.rules):
            base = f"rules[{i}]"
            types = self._events(base, rule.events)
            for k, field in enumerate(rule.fields):
                if field != "*":
                    self._field(f"{base}.fields[{k}]", field, types)
            self._cond_fields(base, rule.when, types)
            for k, role in enumerate(rule.publishers.roles):
                self._template_fields(f"{base}.publishers.roles[{k}]", role, types)
            for c, clause in enumerate(rule.recipients):
                self._cond_fields(f"{base}.recipients[{c}]", clause.when, types)
                for k, role in enumerate(clause.roles):
                    self._template_fields(f"{base}.recipients[{c}].roles[{k}]", role, types)
        others: list[tuple[str, Sequence[Prohibition | Rejection]]] = [
            ("prohibitions", self.p.prohibitions),
            ("rejections", self.p.rejections),
        ]
        for name, items in others:
            for i, item in enumerate(items):
                types = self._events(f"{name}[{i}]", item.events)
                self._cond_fields(f"{name}[{i}]", item.when, types)

    # one rule ---------------------------------------------------------------------------

    def check_rule(self, i: int, rule: Rule) -> None:
        """Roles, lawful basis, retention and the s115 gateway of one rule."""
        base = f"rules[{i}]"
        for k, role in enumerate(rule.publishers.roles):
            self._roles(f"{base}.publishers.roles[{k}]", role, "publisher")
        for c, clause in enumerate(rule.recipients):
            for k, role in enumerate(clause.roles):
                self._roles(f"{base}.recipients[{c}].roles[{k}]", role, "recipient", clause.when)
        if not (rule.lawful_basis or "").strip():
            self.error(
                f"{base}.lawful_basis",
                "missing-lawful-basis",
                f"rule {rule.id} names no lawful_basis (UK GDPR Art 6)",
            )
        if rule.retention is None:
            self.warn(
                f"{base}.retention",
                "missing-retention",
                f"rule {rule.id} names no retention period (ICO Data Sharing Code)",
            )
        elif not durations.is_duration(rule.retention):
            self.error(
                f"{base}.retention",
                "bad-retention",
                f"retention: expected an ISO 8601 duration such as P12M, P2Y or P30D, "
                f"got {rule.retention!r}",
            )
        if rule.gateway and _S115.search(rule.gateway):
            for c, clause in enumerate(rule.recipients):
                for party, sub in _selectable(self.p, clause):
                    # a peer hub discloses only to its own partnership's members, by its
                    # own s115 protocol (hub.federation): it is a conduit, not the recipient
                    if party.kind not in self.p.relevant_authorities and party.kind != PEER_KIND:
                        self.error(
                            f"{base}.recipients[{c}].{sub}",
                            "not-relevant-authority",
                            f"rule {rule.id} relies on s115 CDA 1998 but {party.id} is a "
                            f"{party.kind!r}, not a relevant authority "
                            f"({', '.join(self.p.relevant_authorities)})",
                        )

    # rules against each other ----------------------------------------------------------

    def _overlap(self, a: Rule, b: Rule) -> set[str]:
        """Parties both rules can grant the same event to (empty when provably none)."""
        if not _publishers(self.p, a) & _publishers(self.p, b):
            return set()  # the engine never applies both: no publisher may use both
        shared: set[str] = set()
        for ca in a.recipients:
            for cb in b.recipients:
                if _disjoint(_field_conds((*a.when, *ca.when)), _field_conds((*b.when, *cb.when))):
                    continue
                shared |= {p.id for p, _ in _selectable(self.p, ca)} & {
                    p.id for p, _ in _selectable(self.p, cb)
                }
        return shared

    def check_overlaps(self) -> None:
        """Two rules that may both grant a party the same event must agree on what and why.

        The engine withholds when they disagree (default deny), so a disagreement is a
        protocol bug that silently stops sharing: report it at both rules.
        """
        rules = self.p.rules
        for i, a in enumerate(rules):
            for j in range(i + 1, len(rules)):
                b = rules[j]
                common = [t for t in a.events if t in b.events]
                if not common:
                    continue
                differ = []
                if set(a.fields) != set(b.fields):
                    differ.append("fields")
                if a.lawful_basis != b.lawful_basis:
                    differ.append("lawful basis")
                if not differ:
                    continue
                shared = self._overlap(a, b)
                if not shared:
                    continue
                what = (
                    f"overlaps with rule {{other}} (at {{where}}) for {', '.join(common)} "
                    f"and parties {', '.join(sorted(shared))} but they disagree on "
                    f"{' and '.join(differ)}; make their conditions disjoint or align them"
                )
                for x, y in ((i, j), (j, i)):
                    self.error(
                        f"rules[{x}]",
                        "overlapping-rules",
                        f"rule {rules[x].id} "
                        + what.format(other=rules[y].id, where=self.index.where(f"rules[{y}]")),
                    )

    # warnings ---------------------------------------------------------------------------

    def check_review(self, today: dt.date) -> None:
        """An agreement past its review date should stop being relied on until reviewed."""
        review = self.p.protocol.review_date
        if review is None:
            self.warn("protocol", "no-review-date", "the protocol names no review_date")
        elif review < today:
            self.warn(
                "protocol.review_date",
                "review-overdue",
                f"review date {review} has passed: review the protocol before relying on it",
            )
        elif review - today <= _REVIEW_NOTICE:
            self.warn(
                "protocol.review_date",
                "review-due",
                f"review date {review} is within {_REVIEW_NOTICE.days} days",
            )

    def check_workflows(self) -> None:
        """Art 19 corrections and the MARAC settings name real types, fields and parties."""
        for i, fix in enumerate(self.p.corrections):
            base = f"corrections[{i}]"
            types = self._events(base, fix.events)
            known = set().union(*(self.registry.field_paths(t) for t in types)) if types else set()
            for k, field in enumerate(fix.fields):
                if field == "*":
                    self.error(
                        f"{base}.fields[{k}]",
                        "correction-wildcard",
                        f"correction {fix.id}: name the fields a holder needs, not '*'",
                    )
                elif types and field not in known:
                    self.error(
                        f"{base}.fields[{k}]",
                        "unknown-field",
                        f"field {field!r} is in none of {', '.join(types)}"
                        + _hint(field, sorted(known)),
                    )
        if self.p.marac is not None:
            party = self._known_party("marac.coordinator", self.p.marac.coordinator)
            if party is not None and party.id == HUB.id:
                self.error("marac.coordinator", "hub-not-recipient", "the hub cannot coordinate")
            if not any(p.has_role(self.p.marac.department_role) for p in self.p.parties):
                self.warn(
                    "marac.department_role",
                    "no-departments",
                    f"no party has role {self.p.marac.department_role!r}: "
                    "acknowledgements will not be tracked",
                )
        if self.p.asb is not None:  # ASB Case Reviews: someone coordinates, bodies answer
            party = self._known_party("asb.coordinator", self.p.asb.coordinator)
            if party is not None and party.id == HUB.id:
                self.error("asb.coordinator", "hub-not-recipient", "the hub cannot coordinate")
            if not any(p.has_role(self.p.asb.body_role) for p in self.p.parties):
                self.warn(
                    "asb.body_role",
                    "no-relevant-bodies",
                    f"no party has role {self.p.asb.body_role!r}: no threshold can be decided",
                )
        for i, party in enumerate(self.p.parties):
            if party.id == HUB.id:
                self.error(
                    f"parties[{i}].id",
                    "reserved-id",
                    "party id 'hub' is reserved for the hub's own workflow events",
                )
        self.check_governance()

    def check_governance(self) -> None:
        """Someone holds the IG role, and a rule delivers the agreement alerts to it."""
        governance = self.p.governance
        if governance is None:
            return
        role = governance.ig_role
        if not any(p.has_role(role) for p in self.p.parties):
            self.error(
                "governance.ig_role",
                "ig-role-unfilled",
                f"no party has role {role!r}: nobody would hear that an agreement is lapsing",
            )
        delivers = any(
            _AGREEMENT_ALERT in rule.events and any(role in c.roles for c in rule.recipients)
            for rule in self.p.rules
        )
        if not delivers:
            self.warn(
                "governance.ig_role",
                "ig-alerts-undelivered",
                f"no rule delivers {_AGREEMENT_ALERT} to role {role!r}: agreement alerts "
                "would be withheld (default deny)",
            )

    def check_agreements(self, today: dt.date) -> None:
        """Rules name declared agreements; the engine suspends those past their review date."""
        self._unique(
            [(f"agreements[{i}]", a.id) for i, a in enumerate(self.p.agreements)], "agreement"
        )
        declared = {a.id for a in self.p.agreements}
        for i, rule in enumerate(self.p.rules):
            if rule.agreement is None:
                # the hub's own notices about the agreements themselves carry no personal data
                # and must not lapse with what they warn about
                hub_notice = rule.publishers.parties == (HUB.id,) and all(
                    t.startswith("uk.csp.hub.") for t in rule.events
                )
                if self.p.agreements and not hub_notice:
                    self.warn(
                        f"rules[{i}]",
                        "no-agreement",
                        f"rule {rule.id} names no information sharing agreement",
                    )
            elif self.p.agreements and rule.agreement not in declared:
                hint = difflib.get_close_matches(rule.agreement, sorted(declared), n=1)
                self.error(
                    f"rules[{i}].agreement",
                    "unknown-agreement",
                    f"rule {rule.id} relies on agreement {rule.agreement!r}, which the protocol "
                    "does not declare under agreements"
                    + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                )
        for i, agreement in enumerate(self.p.agreements):
            users = [r.id for r in self.p.rules if r.agreement == agreement.id]
            path = f"agreements[{i}].review_date"
            if not agreement.in_force:  # its rules never apply: a review date changes nothing
                continue
            if agreement.suspended_on(today):
                self.warn(
                    path,
                    "agreement-suspended",
                    f"agreement {agreement.id} passed its review date {agreement.review_date}: "
                    f"rules {', '.join(users) or '(none)'} are suspended and withhold until "
                    "it is reviewed",
                )
            elif agreement.review_date - today <= _REVIEW_NOTICE:
                days = (agreement.review_date - today).days
                self.warn(
                    path,
                    "agreement-review-due",
                    f"agreement {agreement.id} is due for review on {agreement.review_date} "
                    f"(in {days} days): rules {', '.join(users) or '(none)'} will be "
                    "suspended after that date",
                )

    def check_cancelled_rules(self) -> None:
        """Flag grants a prohibition always overrides: harmless, but probably not meant."""
        for i, rule in enumerate(self.p.rules):
            for prohibition in self.p.prohibitions:
                types = [t for t in rule.events if t in prohibition.events]
                if not types:
                    continue
                cancelled: list[str] = []
                for clause in rule.recipients:
                    given = _field_conds((*rule.when, *clause.when))
                    if not all(_implied(c, given) for c in _field_conds(prohibition.when)):
                        continue
                    for party, _ in _selectable(self.p, clause):
                        named = (
                            (not prohibition.parties and not prohibition.role_families)
                            or party.id in prohibition.parties
                            or any(party.has_role_family(f) for f in prohibition.role_families)
                        )
                        if named and _party_provably_passes(prohibition.when, party):
                            cancelled.append(party.id)
                if cancelled:
                    self.warn(
                        f"rules[{i}]",
                        "prohibited-rule",
                        f"prohibition {prohibition.id} always withholds {', '.join(types)} "
                        f"from {', '.join(sorted(set(cancelled)))} although rule {rule.id} "
                        "grants it",
                    )

    def check_strategic(self) -> None:
        """s17A: the analysts and submitters are parties; categories are the schema's."""
        strategic = self.p.strategic
        if strategic is None:
            return
        analysts = self._known_party("strategic.analysts", strategic.analysts)
        if analysts is not None and analysts.id == HUB.id:
            self.error("strategic.analysts", "hub-not-recipient", "the hub cannot analyse")
        for pid in strategic.submitters:
            party = self._known_party(f"strategic.submitters.{pid}", pid)
            permitted = party is not None and any(
                _SUBMISSION in rule.events
                and (
                    pid in rule.publishers.parties
                    or any(map(party.has_role, rule.publishers.roles))
                )
                for rule in self.p.rules
            )
            if party is not None and not permitted:
                self.warn(
                    f"strategic.submitters.{pid}",
                    "submitter-not-permitted",
                    f"no rule lets {pid} publish {_SUBMISSION}: its submissions would be "
                    "refused and it would be alerted as late every quarter",
                )
        if _SUBMISSION in self.registry:
            schema = self.registry.raw(_SUBMISSION)
            category = next(f for f in schema["fields"] if f["name"] == "category")
            symbols = category["type"]["symbols"]
            for name in strategic.categories:
                if name not in symbols:
                    self.error(
                        f"strategic.categories.{name}",
                        "unknown-category",
                        f"category {name!r} is not one {_SUBMISSION} can carry"
                        + _hint(name, symbols),
                    )
        delivers = any(
            _DATASET in rule.events
            and any(
                strategic.analysts in c.parties
                or (analysts is not None and any(analysts.has_role(r) for r in c.roles))
                for c in rule.recipients
            )
            for rule in self.p.rules
        )
        if not delivers:
            self.warn(
                "strategic.analysts",
                "dataset-undelivered",
                f"no rule delivers {_DATASET} to {strategic.analysts}: the released dataset "
                "would be withheld (default deny)",
            )

    def check_socjag(self) -> None:
        """Handling requirements a party claims to meet must be declared codes.

        A typo (``secure-storge``) would silently keep that party from every item carrying
        the real code, and an undeclared code is a promise nobody wrote down.
        """
        declared = self.p.socjag.handling_requirements if self.p.socjag is not None else {}
        for i, party in enumerate(self.p.parties):
            for k, code in enumerate(party.handling):
                if code not in declared:
                    self.error(
                        f"parties[{i}].handling[{k}]",
                        "unknown-handling-requirement",
                        f"party {party.id} claims handling requirement {code!r}, which "
                        "socjag.handling_requirements does not declare" + _hint(code, declared),
                    )
