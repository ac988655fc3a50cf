"""The policy engine: protocol + event -> Decision. Pure, no I/O.

Default deny: a party receives an event only when a rule covering the event type permits the
publisher, every condition of the rule and of the recipient clause holds, and no prohibition
names the party. A deny is a value, not an exception (OPA logs allow and deny alike); every
outcome names the rule or the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from hub.models import Decision, RecipientDecision
from hub.policies.model import Condition, Correction, Party, Protocol, RecipientClause, Rule

__all__ = ["corrections_of", "evaluate", "get_path", "minimise"]

_MISSING = object()
_TEMPLATE = re.compile(r"\{([a-z0-9_.]+)\}")


def get_path(data: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path, or a private sentinel when absent (``None`` is a value)."""
    return _walk(data, _split(path))


def _walk(data: Mapping[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = data
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


@functools.lru_cache(maxsize=4096)
def _split(path: str) -> tuple[str, ...]:
    """A dotted path's parts: paths come from the protocol, a small fixed set."""
    return tuple(path.split("."))


@functools.lru_cache(maxsize=1024)
def _plan(fields: tuple[str, ...]) -> tuple[tuple[str, ...], ...] | None:
    """An allow-list compiled once: its paths' parts in sorted path order (None: ``*``)."""
    if "*" in fields:
        return None
    return tuple(_split(path) for path in sorted(fields))


def minimise(data: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the allow-listed dotted paths; everything else is removed.

    ``address`` keeps the whole sub-record; ``address.district`` keeps only that sub-field.
    ``*`` keeps everything. The allow-list is compiled once per distinct list (a rule's
    fields), not per recipient.
    """
    plan = _plan(tuple(fields))
    if plan is None:
        everything: dict[str, Any] = _deep_copy(data)
        return everything
    out: dict[str, Any] = {}
    for parts in plan:
        value = _walk(data, parts)
        if value is _MISSING:
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _deep_copy(value)
    return out


#: values that are their own copy (immutable): most of an event's fields
_ATOMS = frozenset({str, int, float, bool, type(None)})


def _deep_copy(value: Any) -> Any:
    if type(value) in _ATOMS:
        return value
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _party_attr(party: Party, name: str) -> Any:
    return getattr(party, name)


def _holds(cond: Condition, data: Mapping[str, Any], party: Party | None) -> bool:
    if cond.field is not None:
        subject = get_path(data, cond.field)
    else:
        if party is None or cond.party is None:
            return False
        subject = _party_attr(party, cond.party)
    if subject is _MISSING:
        return False
    if cond.equals is not None:
        return bool(subject == cond.equals)
    if cond.in_ is not None:
        return subject in cond.in_
    if cond.not_in is not None:
        return subject not in cond.not_in
    if cond.equals_field is not None:
        other = get_path(data, cond.equals_field)
        return other is not _MISSING and subject == other
    if cond.in_field is not None:
        other = get_path(data, cond.in_field)
        return isinstance(other, list) and subject in other
    if cond.covers_field is not None:
        return not _uncovered(cond.covers_field, subject, data)
    return False


def _uncovered(path: str, subject: Any, data: Mapping[str, Any]) -> list[Any] | None:
    """Items of the event's list at ``path`` missing from ``subject``; ``None`` = no list.

    An absent or null list (an item with no requirements) is covered by anyone: the
    condition guards what the event demands, and it demands nothing.
    """
    wanted = get_path(data, path)
    if wanted is _MISSING or wanted is None:
        return []
    if not isinstance(wanted, list) or not isinstance(subject, list | tuple):
        return None  # not comparable: fails closed
    return [item for item in wanted if item not in subject]


def _describe(cond: Condition, data: Mapping[str, Any], party: Party | None) -> str:
    """A failed condition in words; ``covers_field`` names exactly what was not met."""
    if cond.covers_field is not None and party is not None and cond.party is not None:
        missing = _uncovered(cond.covers_field, _party_attr(party, cond.party), data)
        if missing:
            return (
                f"party.{cond.party} does not cover event.{cond.covers_field}: "
                f"cannot meet {', '.join(map(str, missing))}"
            )
    return cond.describe()


def _failed(conds: Sequence[Condition], data: Mapping[str, Any], party: Party | None) -> list[str]:
    return [_describe(c, data, party) for c in conds if not _holds(c, data, party)]


def _fill(role: str, data: Mapping[str, Any]) -> str | None:
    """Fill ``{field}`` placeholders from the event; ``None`` when a field is missing."""
    missing = False

    def sub(match: re.Match[str]) -> str:
        nonlocal missing
        value = get_path(data, match.group(1))
        if value is _MISSING or value is None:
            missing = True
            return ""
        return str(value)

    filled = _TEMPLATE.sub(sub, role)
    return None if missing else filled


def _selects(clause: RecipientClause, party: Party, data: Mapping[str, Any]) -> bool:
    if party.id in clause.parties:
        return True
    for role in clause.roles:
        filled = _fill(role, data)
        if filled is not None and party.has_role(filled):
            return True
    return False


def _compiled(protocol: Protocol) -> dict[Any, Any]:
    """What ``evaluate`` worked out once for this protocol and may reuse for every event.

    Kept on the (frozen, immutable) protocol object itself, as its party index is, so a
    reloaded or copied protocol starts afresh.
    """
    kept: tuple[int, dict[Any, Any]] | None = protocol.__dict__.get("_engine_compiled")
    if kept is None or kept[0] != id(protocol):
        # none yet, or inherited by ``model_copy`` (which copies ``__dict__``) from a
        # protocol that may differ: a copy starts afresh
        kept = protocol.__dict__["_engine_compiled"] = (id(protocol), {})
    return kept[1]


def corrections_of(protocol: Protocol, event_type: str) -> tuple[Correction, ...]:
    """``protocol.corrections_for(event_type)``, worked out once per event type.

    Asked for every routed event (the decision cache's key, the router's earlier holders);
    the protocol is immutable, so the scan of its corrections is kept with it.
    """
    cache = _compiled(protocol)
    key = ("corrections", event_type)
    found: tuple[Correction, ...] | None = cache.get(key)
    if found is None:
        found = cache[key] = protocol.corrections_for(event_type)
    return found


def _data_free(protocol: Protocol, rules: Sequence[Rule], event_type: str) -> bool:
    """Whether deciding ``rules`` for ``event_type`` reads nothing of the event's data.

    True when no rule, recipient clause or prohibition covering the event type has a
    condition, no role is a template (``{field}``) and no rule names a ``condition_field``:
    then a party's outcome is the same for every event, and is decided once.
    """
    key = ("data_free", event_type, tuple(map(id, rules)))
    cache = _compiled(protocol)
    free: bool | None = cache.get(key)
    if free is None:
        free = all(
            not rule.when
            and rule.condition_field is None
            and all(
                not clause.when and all("{" not in role for role in clause.roles)
                for clause in rule.recipients
            )
            for rule in rules
        ) and all(not p.when for p in protocol.prohibitions if event_type in p.events)
        cache[key] = free
    return free


def _decide_compiled(
    protocol: Protocol,
    party: Party,
    rules: Sequence[Rule],
    event_type: str,
    data: Mapping[str, Any],
) -> RecipientDecision | None:
    """``_decide_for``, decided once per (event type, party, rules) where data cannot matter."""
    if not _data_free(protocol, rules, event_type):
        return _decide_for(protocol, party, rules, event_type, data)
    key = ("outcome", event_type, party.id, tuple(map(id, rules)))
    cache = _compiled(protocol)
    if key in cache:
        outcome: RecipientDecision | None = cache[key]  # frozen: safe to share
        return outcome
    outcome = cache[key] = _decide_for(protocol, party, rules, event_type, data)
    return outcome


def _selected(
    protocol: Protocol, rules: Sequence[Rule], data: Mapping[str, Any]
) -> AbstractSet[str]:
    """Ids of the parties some recipient clause of ``rules`` selects for this event.

    Where no role of the rules is a template, the answer does not depend on the event and
    is worked out once per protocol and set of rules.
    """
    templated = any("{" in role for rule in rules for c in rule.recipients for role in c.roles)
    if not templated:
        key = ("selected", tuple(map(id, rules)))
        cache = _compiled(protocol)
        found: frozenset[str] | None = cache.get(key)
        if found is None:
            found = cache[key] = frozenset(_select(protocol, rules, data))
        return found
    return _select(protocol, rules, data)


def _select(protocol: Protocol, rules: Sequence[Rule], data: Mapping[str, Any]) -> set[str]:
    named: set[str] = set()
    for rule in rules:
        for clause in rule.recipients:
            named.update(clause.parties)
            for role in clause.roles:
                filled = _fill(role, data)
                if filled is not None:
                    named.update(p.id for p in protocol.parties if p.has_role(filled))
    return named


def _may_publish(rule: Rule, publisher: Party | None, data: Mapping[str, Any]) -> bool:
    """Publisher named by id, by role, by role template (``pubwatch-member:{scheme}``)."""
    if publisher is None:
        return False
    if publisher.id in rule.publishers.parties:
        return True
    for role in rule.publishers.roles:
        filled = _fill(role, data)
        if filled is not None and publisher.has_role(filled):
            return True
    return False


#: distinct (event type, publisher, day, earlier recipients, values read) decisions kept per
#: protocol: the values rules read are districts, schemes, codes, a small set; the earlier
#: recipients of a case vary more, so the entries are made small (``_kept_outcome``)
_DECISIONS_KEPT = 4096


def _condition_paths(conds: Sequence[Condition]) -> list[str]:
    return [
        path
        for c in conds
        for path in (c.field, c.equals_field, c.in_field, c.covers_field)
        if path is not None
    ]


def _template_paths(roles: Sequence[str]) -> list[str]:
    return [m.group(1) for role in roles for m in _TEMPLATE.finditer(role)]


def _paths_read(protocol: Protocol, event_type: str) -> tuple[str, ...]:
    """Every event path that deciding ``event_type`` can read, found once per protocol.

    Conditions (their field and the event fields party attributes are compared with), role
    templates of publishers and recipients, a rule's ``condition_field``, and the conditions
    of the rejections, prohibitions and rules covering the type. Nothing else of the event
    reaches a decision, so two events that agree on these paths get the same outcomes.
    """
    key = ("paths", event_type)
    cache = _compiled(protocol)
    found: tuple[str, ...] | None = cache.get(key)
    if found is None:
        paths: list[str] = []
        for rejection in protocol.rejections:
            if event_type in rejection.events:
                paths += _condition_paths(rejection.when)
        for prohibition in protocol.prohibitions:
            if event_type in prohibition.events:
                paths += _condition_paths(prohibition.when)
        for rule in protocol.rules_for(event_type):
            paths += _condition_paths(rule.when) + _template_paths(rule.publishers.roles)
            if rule.condition_field is not None:
                paths.append(rule.condition_field)
            for clause in rule.recipients:
                paths += _condition_paths(clause.when) + _template_paths(clause.roles)
        found = cache[key] = tuple(sorted(set(paths)))
    return found


class _Unhashable(Exception):  # noqa: N818 - internal control signal, never escapes evaluate()
    pass


def _frozen(value: Any) -> Any:
    """A hashable stand-in for an event value, tagged by type so 1, 1.0 and True differ."""
    kind = type(value)
    if kind in _ATOMS:
        return (kind.__name__, value)
    if value is _MISSING:  # an absent optional field: a state of its own, not None
        return ("missing",)
    if isinstance(value, list | tuple):
        return ("list", tuple(_frozen(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    raise _Unhashable


def _decisions(protocol: Protocol) -> dict[Any, tuple[Any, ...]]:
    cache = _compiled(protocol)
    kept: dict[Any, tuple[Any, ...]] | None = cache.get("decisions")
    if kept is None:
        kept = cache["decisions"] = {}
    return kept


def _kept_outcome(
    protocol: Protocol, recipients: tuple[RecipientDecision, ...]
) -> tuple[RecipientDecision, ...]:
    """The outcomes as the decision cache keeps them: one shared object per distinct outcome.

    Most kept decisions differ only in their key (a case's earlier recipients, a district)
    and hold the same per-party outcomes: kept as decided, each entry held its own dozen
    ``RecipientDecision`` models and their strings, about 4 KiB, and a worker's memory grew
    by that for every new key until the cache was full (4,096 of them: 16 MiB). Outcomes are
    frozen, so equal ones are one object; the table of them is reset with the decisions.
    """
    cache = _compiled(protocol)
    shared: dict[RecipientDecision, RecipientDecision] | None = cache.get("outcomes")
    if shared is None:
        shared = cache["outcomes"] = {}
    return tuple(shared.setdefault(r, r) for r in recipients)


def evaluate(
    protocol: Protocol,
    *,
    event_id: str,
    event_type: str,
    publisher: str,
    data: Mapping[str, Any],
    today: dt.date | None = None,
    previous: Collection[str] = (),
) -> Decision:
    """Decide who receives an event and which fields each may see.

    With ``today``, rules whose information sharing agreement is past its review date are
    suspended: a party they alone would have served is withheld, naming the agreement.
    ``previous`` names the parties that received earlier events of the same case: a
    correction (UK GDPR Art 19) covering this event type reaches those no rule serves now.

    The outcome depends on the event only through the paths the covering rules read
    (``_paths_read``), so it is kept per protocol for those values with the type, the
    publisher, the day and the earlier recipients, and only the event id differs between
    two events that agree on all of them. Outcomes are frozen models: safe to share.
    """
    try:
        key = (
            event_type,
            publisher,
            today,
            # earlier holders matter only where a correction covers the type (``_correct``);
            # party ids, interned: the key is kept, the lookup's strings are not
            frozenset(map(sys.intern, previous)) if corrections_of(protocol, event_type) else None,
            tuple(_frozen(get_path(data, p)) for p in _paths_read(protocol, event_type)),
        )
    except _Unhashable:
        return _evaluate(protocol, event_id, event_type, publisher, data, today, previous)
    kept = _decisions(protocol)
    fields = kept.get(key)
    if fields is None:
        decision = _evaluate(protocol, event_id, event_type, publisher, data, today, previous)
        if len(kept) >= _DECISIONS_KEPT:
            kept.clear()  # a new day or an unusual stream: start again rather than grow
            _compiled(protocol).pop("outcomes", None)
        # this event answered as the next ones will be (the kept outcomes), from this tuple:
        # read back from ``kept``, another thread's clear in between raised KeyError
        fields = kept[key] = (
            decision.rejected,
            decision.reject_reason,
            decision.reject_rule,
            _kept_outcome(protocol, decision.recipients),
            decision.suspended_agreements,
        )
    rejected, reject_reason, reject_rule, recipients, suspended = fields
    return Decision.model_construct(  # every field was validated when it was first decided
        event_id=event_id,
        event_type=event_type,
        publisher=publisher,
        protocol_hash=protocol.content_hash,
        rejected=rejected,
        reject_reason=reject_reason,
        reject_rule=reject_rule,
        recipients=recipients,
        suspended_agreements=suspended,
    )


def _evaluate(
    protocol: Protocol,
    event_id: str,
    event_type: str,
    publisher: str,
    data: Mapping[str, Any],
    today: dt.date | None,
    previous: Collection[str],
) -> Decision:
    base = {
        "event_id": event_id,
        "event_type": event_type,
        "publisher": publisher,
        "protocol_hash": protocol.content_hash,
    }
    for rejection in protocol.rejections:
        if event_type in rejection.events and not _failed(rejection.when, data, None):
            return Decision(
                **base, rejected=True, reject_reason=rejection.reason, reject_rule=rejection.id
            )
    covering = protocol.rules_for(event_type)
    pub = protocol.party(publisher)
    permitted = [r for r in covering if _may_publish(r, pub, data)]
    if covering and not permitted:
        return Decision(
            **base,
            rejected=True,
            reject_reason=(
                f"{publisher} may not publish {event_type}: rules "
                f"{', '.join(r.id for r in covering)} name other publishers"
            ),
            reject_rule=None,
        )

    active = [r for r in permitted if protocol.suspension(r, today) is None]
    paused = [r for r in permitted if protocol.suspension(r, today) is not None]
    outcomes: list[RecipientDecision] = []
    suspended: list[str] = []
    # A party no clause of a permitted rule selects gets no decision from the rules (nor from
    # a suspended one): only a correction can reach it. Found once per event, so the rules
    # are not walked, nor role templates filled, for each of the protocol's parties.
    named = _selected(protocol, permitted, data)
    for party in protocol.parties:
        if party.id == publisher or (party.id not in named and party.id not in previous):
            continue
        outcome = _decide_compiled(protocol, party, active, event_type, data)
        if paused and (outcome is None or outcome.outcome == "withhold"):
            held = _suspended_for(protocol, party, paused, event_type, data, today)
            if held is not None and (outcome is None or not _prohibited(protocol, outcome)):
                outcome = held
                agreement = protocol.agreement(
                    next(r.agreement for r in paused if r.id == held.rule_id)
                )
                # only a lapsed agreement is news to the publisher; one never in force is not
                if agreement is not None and agreement.in_force and agreement.id not in suspended:
                    suspended.append(agreement.id)
            elif outcome is None:  # keep the record of why a suspended rule did not apply
                outcome = _decide_for(protocol, party, paused, event_type, data)
        if previous and party.id in previous:
            outcome = _correct(protocol, party, outcome, event_type, data)
        if outcome is not None:
            outcomes.append(outcome)
    if not outcomes:
        outcomes.append(
            RecipientDecision(
                party="*",
                outcome="withhold",
                reason=(
                    f"default deny: no rule discloses {event_type} from {publisher}"
                    if not covering
                    else "default deny: no recipient matches the rules' conditions"
                ),
            )
        )
    return Decision(**base, recipients=tuple(outcomes), suspended_agreements=tuple(suspended))


def _correct(
    protocol: Protocol,
    party: Party,
    outcome: RecipientDecision | None,
    event_type: str,
    data: Mapping[str, Any],
) -> RecipientDecision | None:
    """An earlier recipient no rule serves now still gets the correction, unless prohibited."""
    corrections = corrections_of(protocol, event_type)
    if not corrections or (outcome is not None and outcome.outcome == "deliver"):
        return outcome
    if outcome is not None and _prohibited(protocol, outcome):
        return outcome
    prohibited = _prohibition_for(protocol, party, event_type, data)
    if prohibited is not None:
        return prohibited
    fix = corrections[0]
    return RecipientDecision(
        party=party.id,
        outcome="deliver",
        rule_id=fix.id,
        reason=f"correction {fix.id}: {party.id} received earlier events of this case",
        fields=fix.fields,
        lawful_basis=fix.lawful_basis,
        condition="; ".join(fix.conditions) or None,
        purpose=fix.purpose,
        gateway=fix.gateway,
    )


def _prohibition_for(
    protocol: Protocol, party: Party, event_type: str, data: Mapping[str, Any]
) -> RecipientDecision | None:
    """The first prohibition that withholds ``event_type`` from ``party``, as a decision."""
    for prohibition in protocol.prohibitions:
        if event_type not in prohibition.events:
            continue
        everyone = not prohibition.parties and not prohibition.role_families
        named = (
            everyone
            or party.id in prohibition.parties
            or any(party.has_role_family(f) for f in prohibition.role_families)
        )
        if named and not _failed(prohibition.when, data, party):
            return RecipientDecision(
                party=party.id,
                outcome="withhold",
                rule_id=prohibition.id,
                reason=f"prohibited by {prohibition.id}: {prohibition.reason}",
            )
    return None


def _prohibited(protocol: Protocol, outcome: RecipientDecision) -> bool:
    return any(p.id == outcome.rule_id for p in protocol.prohibitions)


def _suspended_for(
    protocol: Protocol,
    party: Party,
    paused: Sequence[Rule],
    event_type: str,
    data: Mapping[str, Any],
    today: dt.date | None,
) -> RecipientDecision | None:
    """What a suspended rule would have given ``party``, turned into a named withhold."""
    would = _decide_for(protocol, party, paused, event_type, data)
    if would is None or would.outcome != "deliver" or would.rule_id is None:
        return None
    rule = next(r for r in paused if r.id == would.rule_id)
    agreement = protocol.suspension(rule, today)
    if agreement is None:  # paused rules are suspended by construction
        return None
    if not agreement.in_force:
        reason = (
            f"rule {rule.id} does not apply: information sharing agreement {agreement.id} "
            f"({agreement.title}) is not in force in this protocol"
        )
    else:
        reason = (
            f"rule {rule.id} suspended: information sharing agreement {agreement.id} "
            f"passed its review date {agreement.review_date}; the partnership must review "
            "it before this sharing resumes"
        )
    return RecipientDecision(
        party=party.id, outcome="withhold", rule_id=rule.id, reason=reason, gateway=rule.gateway
    )


def _rule(rules: Sequence[Rule], rule_id: str) -> Rule:
    return next(r for r in rules if r.id == rule_id)


def _decide_for(
    protocol: Protocol,
    party: Party,
    rules: Sequence[Rule],
    event_type: str,
    data: Mapping[str, Any],
) -> RecipientDecision | None:
    grants: list[Rule] = []
    misses: list[tuple[str, str]] = []
    for rule in rules:
        # A rule's recipient clauses are alternatives: the party is granted when any clause
        # that selects it has all its conditions met, not only the first selecting clause.
        failures: list[str] = []
        for clause in rule.recipients:
            if not _selects(clause, party, data):
                continue
            failed = _failed(rule.when, data, None) + _failed(clause.when, data, party)
            if not failed:
                grants.append(rule)
                break
            failures.extend(f for f in failed if f not in failures)
        else:
            if failures:
                misses.append(
                    (rule.id, f"rule {rule.id}: condition not met: {'; '.join(failures)}")
                )
    if not grants and not misses:
        return None  # no rule names this party for this event: nothing to record
    prohibited = _prohibition_for(protocol, party, event_type, data)
    if prohibited is not None:
        return prohibited
    if not grants:
        # Name the rule that would have served the party but for a recipient condition (a
        # handling requirement it cannot meet), not one that never covered this event.
        relevant = [m for m in misses if not _failed(_rule(rules, m[0]).when, data, None)]
        named = (relevant or misses)[0][0]
        return RecipientDecision(
            party=party.id,
            outcome="withhold",
            rule_id=named,
            reason="; ".join(text for _, text in misses),
            gateway=_rule(rules, named).gateway,
        )
    first = grants[0]
    disagreeing = [
        g.id
        for g in grants[1:]
        if set(g.fields) != set(first.fields) or g.lawful_basis != first.lawful_basis
    ]
    if disagreeing:
        return RecipientDecision(
            party=party.id,
            outcome="withhold",
            reason=(
                f"default deny: rules {first.id} and {', '.join(disagreeing)} disagree on "
                "fields or lawful basis (run hub policy check)"
            ),
        )
    condition = "; ".join(first.conditions)
    if first.condition_field is not None:
        relied = get_path(data, first.condition_field)
        if relied is not _MISSING and relied is not None:
            relied_on = f"relied on {first.condition_field}={relied}"
            condition = f"{condition}; {relied_on}" if condition else relied_on
    return RecipientDecision(
        party=party.id,
        outcome="deliver",
        rule_id=first.id,
        reason=f"rule {first.id}",
        fields=first.fields,
        lawful_basis=first.lawful_basis,
        condition=condition or None,
        purpose=first.purpose,
        retention=first.retention,
        gateway=first.gateway,
    )
