"""``hub policy explain``: what one party would receive for a sample event, and why.

An information governance officer asks "if the MARAC coordinator raises this flag, what does
housing repairs see?" before a rule goes live. The answer must be the router's answer, so it
runs the same engine (``evaluate``) and the same minimisation (``minimise``) on the event as
the router would hold it: validated against its schema and decoded back, so defaults are
filled in and dates read as ISO strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hub.errors import UnknownPartyError
from hub.models import Decision
from hub.policies.engine import evaluate, minimise
from hub.policies.model import Protocol
from hub.schemas.codec import SchemaRegistry, to_jsonable

__all__ = ["Explanation", "Outcome", "explain"]

#: deliver/withhold: the engine decided for this party; rejected: the whole event is refused;
#: not-named: no rule covering the event type names the party (default deny, nothing recorded)
Outcome = Literal["deliver", "withhold", "rejected", "not-named"]


class Explanation(BaseModel):
    """One party's outcome for one event: the rule or reason, the basis and exact payload."""

    model_config = ConfigDict(frozen=True)

    event_type: str
    publisher: str
    party: str
    outcome: Outcome
    rule_id: str | None = None
    reason: str
    lawful_basis: str | None = None
    gateway: str | None = None
    condition: str | None = None
    purpose: str | None = None
    retention: str | None = None
    fields: tuple[str, ...] = ()
    payload: dict[str, Any] | None = None
    removed: tuple[str, ...] = ()
    protocol_hash: str


def party_id(source: str) -> str:
    """A party id from a CloudEvents source (``/parties/x``) or a bare id."""
    return source.removeprefix("/parties/")


def explain(
    protocol: Protocol,
    registry: SchemaRegistry,
    *,
    event_type: str,
    publisher: str,
    data: Mapping[str, Any],
    as_party: str,
) -> Explanation:
    """Explain what ``as_party`` receives when ``publisher`` publishes ``data``.

    Raises:
        UnknownPartyError: the publisher or the party is not declared in the protocol.
        SchemaError: the event type has no schema.
        EventValidationError: the sample payload does not match its schema.
    """
    publisher = party_id(publisher)
    as_party = party_id(as_party)
    for role, pid in (("publisher", publisher), ("party", as_party)):
        if protocol.party(pid) is None:
            raise UnknownPartyError(
                f"{role}: expected a party of protocol {protocol.protocol.id}, got {pid!r} "
                "(`hub policy parties` lists them)"
            )
    # Encode then decode: a bad sample fails here with the codec's message, and the engine
    # sees what the router sees (defaults filled, dates as ISO strings).
    held = to_jsonable(registry.decode(event_type, registry.encode(event_type, data)))
    decision = evaluate(
        protocol, event_id="explain", event_type=event_type, publisher=publisher, data=held
    )
    base: dict[str, Any] = {
        "event_type": event_type,
        "publisher": publisher,
        "party": as_party,
        "protocol_hash": protocol.content_hash,
    }
    if decision.rejected:
        return Explanation(
            **base,
            outcome="rejected",
            rule_id=decision.reject_rule,
            reason=decision.reject_reason or "rejected",
        )
    found = next((r for r in decision.recipients if r.party == as_party), None)
    if found is None:
        return Explanation(**base, outcome="not-named", reason=_not_named(decision, as_party))
    if found.outcome == "withhold":
        return Explanation(**base, outcome="withhold", rule_id=found.rule_id, reason=found.reason)
    payload = minimise(held, found.fields)
    return Explanation(
        **base,
        outcome="deliver",
        rule_id=found.rule_id,
        reason=found.reason,
        lawful_basis=found.lawful_basis,
        gateway=found.gateway,
        condition=found.condition,
        purpose=found.purpose,
        retention=found.retention,
        fields=found.fields,
        payload=payload,
        removed=tuple(_removed(held, payload)),
    )


def _not_named(decision: Decision, party: str) -> str:
    if party == decision.publisher:
        return "the publisher is not sent its own event"
    return (
        f"default deny: no rule permitting {decision.event_type} from {decision.publisher} "
        f"names {party} (by id or role)"
    )


def _removed(data: Mapping[str, Any], kept: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The highest dotted paths of ``data`` that minimisation removed."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in kept:
            yield path
        elif isinstance(value, Mapping) and isinstance(kept[key], Mapping):
            yield from _removed(value, kept[key], f"{path}.")
