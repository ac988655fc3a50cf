"""``evaluate`` decides data-free rules once per protocol: the decisions never change for it.

The engine keeps, on each protocol object, the outcomes that cannot depend on an event's
data (no condition, no role template, no ``condition_field``, no conditional prohibition)
and the parties its template-free rules select. These tests hold every decision of a long
stream of scenario events, every event type, to what a protocol seen for the first time
decides, and check that a data-dependent rule is still decided from each event's data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub.models import Decision
from hub.policies import engine
from hub.policies.engine import evaluate
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.scenarios.north_worcs import Scenario
from hub.settings import default_protocol_path
from tests import factories

TODAY = dt.date(2026, 12, 4)


def _police_flag(protocol: Protocol, event_id: str, data: dict[str, Any]) -> Decision:
    """The decision on a MARAC flag the police raise today."""
    return evaluate(
        protocol,
        event_id=event_id,
        event_type="uk.csp.marac.flag.raised.v1",
        publisher="west-mercia-police",
        data=data,
        today=TODAY,
    )


def _expired(
    protocol: Protocol, event_id: str, data: dict[str, Any], previous: frozenset[str]
) -> Decision:
    """The decision on a MARAC flag's expiry the hub publishes today, given earlier holders."""
    return evaluate(
        protocol,
        event_id=event_id,
        event_type="uk.csp.marac.flag.expired.v1",
        publisher="hub",
        data=data,
        today=TODAY,
        previous=previous,
    )


def test_every_scenario_decision_is_what_a_fresh_protocol_decides() -> None:
    reused = load_protocol(default_protocol_path())  # compiled as it goes
    fresh = load_protocol(default_protocol_path())
    types = set()
    for n, item in enumerate(Scenario(seed=3).events(400)):
        types.add(item.event_type)
        fresh.__dict__.pop("_engine_compiled", None)  # as if seen for the first time
        for protocol in (reused, fresh):
            decision = evaluate(
                protocol,
                event_id=f"ev-{n}",
                event_type=item.event_type,
                publisher=item.publisher,
                data=item.data,
                today=TODAY,
            )
            if protocol is reused:
                expected = decision
        assert decision == expected
    assert len(types) >= 5  # many event types, so many rules, went through one protocol


def test_a_data_dependent_rule_is_still_decided_per_event() -> None:
    protocol = load_protocol(default_protocol_path())
    redditch = factories.marac_flag("MARAC-2026-0001", district="redditch")
    bromsgrove = factories.marac_flag("MARAC-2026-0002", district="bromsgrove")
    decided = [
        _police_flag(protocol, event_id, data)
        for event_id, data in (("a", redditch), ("b", bromsgrove), ("c", redditch))
    ]
    delivered = [{r.party for r in d.recipients if r.outcome == "deliver"} for d in decided]
    assert delivered[0] != delivered[1]  # the district decides who receives it
    assert delivered[0] == delivered[2]


def test_a_kept_decision_is_per_day_publisher_and_earlier_holders() -> None:
    """One event decided again with other earlier holders, or another day, is decided anew."""
    protocol = load_protocol(default_protocol_path())
    data = factories.marac_expired("MARAC-2026-0042")

    def delivered(event_id: str, previous: frozenset[str]) -> set[str]:
        decision = _expired(protocol, event_id, data, previous)
        assert decision.event_id == event_id  # a kept outcome still names its own event
        return {r.party for r in decision.recipients if r.outcome == "deliver"}

    alone = delivered("a", frozenset())
    holder = "bromsgrove-dc.housing"
    assert holder not in alone
    assert holder in delivered("b", frozenset({holder}))  # the Art 19 correction reaches it
    assert delivered("c", frozenset()) == alone


def test_a_copied_protocol_does_not_reuse_the_original_decisions() -> None:
    """``model_copy`` copies ``__dict__``: a changed copy must not answer from the cache."""
    protocol = load_protocol(default_protocol_path())
    data = factories.marac_flag("MARAC-2026-0001", district="redditch")

    def delivered(protocol: Protocol, event_id: str) -> set[str]:
        return {r.party for r in _police_flag(protocol, event_id, data).deliveries}

    assert delivered(protocol, "a")
    without_rules = protocol.model_copy(update={"rules": ()})
    assert not delivered(without_rules, "b")


def test_an_absent_optional_field_is_decided_once_and_apart_from_a_present_one() -> None:
    """SOCJAG intel graded P has no handling conditions: the paths the rules read are absent.

    Such events are kept per protocol as others are (the second reuses the first's
    outcomes), and an absent field is a value of its own: a C-graded item naming a partner
    in ``share_with`` is still decided from its conditions.
    """
    protocol = load_protocol(default_protocol_path())
    fresh = load_protocol(default_protocol_path())
    named = "redditch-bc.community-safety"
    plain = [factories.socjag_intel(f"INT-2026-00000{n}") for n in (1, 2)]
    coded = factories.socjag_intel("INT-2026-000003", handling_code="C", share_with=[named])

    def decide(p: Protocol, event_id: str, data: dict[str, Any]) -> Decision:
        fresh.__dict__.pop("_engine_compiled", None)  # as if seen for the first time
        return evaluate(
            p,
            event_id=event_id,
            event_type="uk.csp.socjag.intel.v1",
            publisher="west-mercia-police",
            data=data,
            today=TODAY,
        )

    first, second = decide(protocol, "a", plain[0]), decide(protocol, "b", plain[1])
    assert second.event_id == "b"
    assert second.recipients is first.recipients  # kept, not decided again
    shared = decide(protocol, "c", coded)
    delivered = [{r.party for r in d.recipients if r.outcome == "deliver"} for d in (first, shared)]
    assert {named, "hwfrs"} <= delivered[0]  # P: every SOCJAG member
    assert named in delivered[1]  # C: only those it names
    assert "hwfrs" not in delivered[1]
    for event_id, data, decision in (("a", plain[0], first), ("c", coded, shared)):
        assert decision == decide(fresh, event_id, data)


def test_kept_decisions_with_other_keys_share_their_equal_outcomes() -> None:
    """A worker's memory grew ~4 KiB for each new kept key (a case's earlier holders): each
    kept decision held its own copies of the same per-party outcomes. Equal outcomes of
    decisions kept under different keys are now one object, and still equal to a fresh one."""
    protocol = load_protocol(default_protocol_path())
    data = factories.marac_expired("MARAC-2026-0042")

    def decide(event_id: str, previous: frozenset[str]) -> Decision:
        return _expired(protocol, event_id, data, previous)

    # two keys (the earlier holders differ: a party with no rule for the type either way)
    first = decide("a", frozenset({"nwcsp.analysts"}))
    second = decide("b", frozenset({"nwcsp.analysts", "hwfrs"}))
    again = decide("c", frozenset({"nwcsp.analysts", "hwfrs"}))  # from the kept decisions
    fresh = load_protocol(default_protocol_path())
    expected = _expired(fresh, "c", data, frozenset({"nwcsp.analysts", "hwfrs"}))
    assert again == expected
    shared = [r for r in again.recipients if any(r is f for f in first.recipients)]
    assert shared, "no outcome of the second key's decision is the first key's object"
    assert [r.party for r in second.recipients] == [r.party for r in again.recipients]


class _ClearedBehind(dict[Any, Any]):
    """Kept decisions another thread clears (it filled them) just after this one stores."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.clear()


def test_a_decision_stored_as_another_thread_clears_the_kept_ones_is_still_answered() -> None:
    """evaluate runs in several threads in the web console (explain, a sync endpoint): a miss
    stored its decision and read it back from the kept decisions, which another thread could
    have cleared in between (the cache full at 4,096): KeyError instead of the decision."""
    protocol = load_protocol(default_protocol_path())
    engine._compiled(protocol)["decisions"] = _ClearedBehind()
    data = factories.marac_flag("MARAC-2026-0077")
    decided = _police_flag(protocol, "e1", data)
    assert decided == _police_flag(load_protocol(default_protocol_path()), "e1", data)
