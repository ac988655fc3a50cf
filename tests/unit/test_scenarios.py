"""The seeded North Worcestershire scenario: deterministic, valid, and honest about outcomes."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import SchemaError
from hub.policies.engine import evaluate
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.scenarios.north_worcs import (
    EVENT_TYPES,
    MARAC_ACCESS,
    MARAC_RAISED,
    MARAC_UPDATED,
    MARAC_WITHDRAWN,
    PUBWATCH_BAN,
    RETAIL_EXCLUSION,
    SOCJAG_INTEL,
    Scenario,
    ScenarioEvent,
    sample_event,
)
from hub.schemas.codec import SchemaRegistry
from hub.workflows.referral import ReferralCheck, check_referral, check_update

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "hub" / "policies" / "north-worcestershire.yaml"
EXAMPLES = ROOT / "examples" / "events"
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/:.]{1,63}$")
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}$")
KEY_FIELD = {
    MARAC_RAISED: "case_ref",
    MARAC_UPDATED: "case_ref",
    MARAC_WITHDRAWN: "case_ref",
    SOCJAG_INTEL: "intel_ref",
    PUBWATCH_BAN: "ban_ref",
    RETAIL_EXCLUSION: "ban_ref",
    MARAC_ACCESS: "case_ref",
}
OUTCODES = {
    "redditch": ("B97", "B98"),
    "bromsgrove": ("B60", "B61"),
    "wyre_forest": ("DY10", "DY11", "DY12", "DY13"),
    "worcester": ("WR",),
    "wychavon": ("WR",),
}
MARAC_PUBLISHERS = {"marac.north-worcs", "west-mercia-police"}
URGENT_CARE = {"wah-nhs.alexandra-ed", "wah-nhs.kidderminster-miu", "wah-nhs.safeguarding"}
COUNT = 1000


@pytest.fixture(scope="module")
def events() -> list[ScenarioEvent]:
    return list(Scenario(seed=7).events(COUNT))


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry()


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(PROTOCOL)


def person_names(data: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for holder in ("contact", "subject"):
        value = data.get(holder)
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            names.add(value["name"])
    return names


# -- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_stream(events: list[ScenarioEvent]) -> None:
    assert list(Scenario(seed=7).events(COUNT)) == events


def test_each_call_replays_from_the_start() -> None:
    scenario = Scenario(seed=3)
    first = list(scenario.events(40))
    assert list(scenario.events(40)) == first
    assert list(scenario.events(15)) == first[:15]


def test_different_seeds_differ(events: list[ScenarioEvent]) -> None:
    other = list(Scenario(seed=8).events(COUNT))
    assert other != events
    assert {e.key for e in other} != {e.key for e in events}


def test_start_date_moves_the_clock() -> None:
    later = next(Scenario(seed=7, start=dt.date(2027, 3, 1)).events(1))
    first = next(Scenario(seed=7).events(1))
    assert later.data != first.data


def test_global_random_is_untouched() -> None:
    state = random.getstate()
    list(Scenario(seed=11).events(200))
    assert random.getstate() == state


def test_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        list(Scenario().events(-1))
    assert list(Scenario().events(0)) == []


# -- validity --------------------------------------------------------------------------------


def test_every_event_encodes(events: list[ScenarioEvent], registry: SchemaRegistry) -> None:
    # Rejected events are schema-valid too: the protocol, not the codec, must refuse them.
    for event in events:
        registry.encode(event.event_type, event.data)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_any_seed_gives_valid_events(seed: int) -> None:
    registry = SchemaRegistry()
    for event in Scenario(seed=seed).events(60):
        registry.encode(event.event_type, event.data)
        assert REF.fullmatch(event.key)


def test_keys_match_the_reference(events: list[ScenarioEvent]) -> None:
    for event in events:
        assert event.key == event.data[KEY_FIELD[event.event_type]]
        assert REF.fullmatch(event.key)


def test_subject_is_a_pseudonym_never_a_name(events: list[ScenarioEvent]) -> None:
    for event in events:
        if event.subject is None:
            continue
        assert REF.fullmatch(event.subject)
        assert event.subject not in person_names(event.data)
        assert " " not in event.subject


def test_notes_carry_no_names(events: list[ScenarioEvent]) -> None:
    for event in events:
        for name in person_names(event.data):
            assert name not in event.note
            assert name.split()[-1] not in event.note


def test_addresses_and_contacts(events: list[ScenarioEvent]) -> None:
    for event in events:
        if not event.event_type.startswith("uk.csp.marac.") or event.event_type == MARAC_ACCESS:
            continue
        address = event.data["address"]
        assert POSTCODE.fullmatch(address["postcode"])
        assert address["postcode"].startswith(OUTCODES[address["district"]])
        contact = event.data["contact"]
        assert contact["email"].endswith("@example.org.uk")
        code = "01562" if address["district"] == "wyre_forest" else "01527"
        assert contact["phone"].startswith(code)


def _referral_checks(events: list[ScenarioEvent], protocol: Protocol) -> dict[int, ReferralCheck]:
    """The router's SafeLives check of every raised flag, with the scenario's own history."""
    assert protocol.marac is not None
    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    referred: set[str] = set()
    checks = {}
    for i, event in enumerate(events):
        if event.event_type != MARAC_RAISED:
            continue
        subject = event.data["subject_ref"]
        last = now - dt.timedelta(days=30) if subject in referred else None
        checks[i] = check_referral(event.data, protocol.marac, now=now, last_referral=last)
        if event.expect == "routed":
            referred.add(subject)
    return checks


def test_marac_flags_follow_safelives(events: list[ScenarioEvent], protocol: Protocol) -> None:
    checks = _referral_checks(events, protocol)
    invalid = [i for i, check in checks.items() if not check.valid]
    assert invalid  # the scenario shows the check refusing a referral now and then
    for i in invalid:
        assert events[i].expect == "rejected", (events[i].note, checks[i].problems)
    for i, event in enumerate(events):
        if event.event_type != MARAC_RAISED or i in invalid:
            continue
        data = event.data
        marac = dt.date.fromisoformat(data["marac_date"])
        review = dt.date.fromisoformat(data["review_date"])
        assert 170 <= (review - marac).days <= 190
        if data["referral_reason"] == "dash":
            assert data["dash_score"] >= 14
            assert data["risk_level"] == "high"
        assert data["markers"]


def test_bans_last_three_to_twelve_months(events: list[ScenarioEvent]) -> None:
    for event in events:
        if event.event_type != PUBWATCH_BAN:
            continue
        start = dt.date.fromisoformat(event.data["ban_start"])
        end = dt.date.fromisoformat(event.data["ban_end"])
        assert 89 <= (end - start).days <= 366
        assert event.data["scheme"] == "redditch"
        born = dt.date.fromisoformat(event.data["subject"]["date_of_birth"])
        assert (start - born).days >= 18 * 365


def test_intel_handling_conditions_name_socjag_members(
    events: list[ScenarioEvent], protocol: Protocol
) -> None:
    for event in events:
        if event.event_type != SOCJAG_INTEL:
            continue
        conditions = event.data["handling_conditions"]
        if event.data["handling_code"] == "P":
            assert conditions is None
            continue
        assert 1 <= len(conditions["share_with"]) <= 2
        for party_id in conditions["share_with"]:
            party = protocol.party(party_id)
            assert party is not None
            assert party.has_role("socjag-member")
            if event.data["classification"] == "OFFICIAL-SENSITIVE":
                assert party.scope != "department"


# -- the mix ---------------------------------------------------------------------------------


def test_mix_has_every_type_in_rough_proportion(events: list[ScenarioEvent]) -> None:
    counts = Counter(e.event_type for e in events)
    assert set(counts) == set(EVENT_TYPES)
    marac = counts[MARAC_RAISED] + counts[MARAC_UPDATED] + counts[MARAC_WITHDRAWN]
    assert 0.30 <= marac / COUNT <= 0.48
    assert 0.25 <= counts[SOCJAG_INTEL] / COUNT <= 0.40
    assert 0.20 <= counts[PUBWATCH_BAN] / COUNT <= 0.35
    intel = [e.data for e in events if e.event_type == SOCJAG_INTEL]
    assert {d["category"] for d in intel} == {
        "county_lines", "modern_slavery", "child_exploitation", "ocg", "illegal_vapes", "other"
    }  # fmt: skip
    assert {d["handling_code"] for d in intel} == {"P", "C"}
    assert {d["classification"] for d in intel} == {"OFFICIAL", "OFFICIAL-SENSITIVE"}
    assert 0.01 <= counts[MARAC_ACCESS] / COUNT <= 0.06


def test_updates_never_lower_a_dash_level(events: list[ScenarioEvent], protocol: Protocol) -> None:
    assert protocol.marac is not None
    updates = [e for e in events if e.event_type == MARAC_UPDATED]
    assert any(e.data["risk_level"] != "high" for e in updates)
    for event in updates:
        assert check_update(event.data, protocol.marac) == (), event.note


def test_urgent_care_views_flags_of_open_cases_raised_a_week_before(
    events: list[ScenarioEvent],
) -> None:
    raised: dict[str, int] = {}
    withdrawn: set[str] = set()
    for i, event in enumerate(events):
        case = str(event.data.get("case_ref"))
        if event.event_type == MARAC_RAISED and event.expect == "routed":
            raised[case] = i
        elif event.event_type == MARAC_WITHDRAWN:
            withdrawn.add(case)
        elif event.event_type == MARAC_ACCESS:
            assert case in raised
            assert case not in withdrawn
            assert i - raised[case] >= 5
            assert event.data["viewed_by"]
            assert event.data["setting"]


def test_updates_and_withdrawals_refer_to_earlier_cases(events: list[ScenarioEvent]) -> None:
    raised: dict[str, ScenarioEvent] = {}
    withdrawn: set[str] = set()
    updated: set[str] = set()
    for event in events:
        ref: str = event.data.get("case_ref", "")
        if event.event_type == MARAC_RAISED and event.expect == "routed":
            assert ref not in raised
            raised[ref] = event
        elif event.event_type in (MARAC_UPDATED, MARAC_WITHDRAWN):
            assert ref in raised, f"{event.event_type} for a case never raised: {ref}"
            assert ref not in withdrawn, f"{event.event_type} after withdrawal: {ref}"
            original = raised[ref]
            assert event.data["subject_ref"] == original.data["subject_ref"]
            assert event.publisher == original.publisher
            (withdrawn if event.event_type == MARAC_WITHDRAWN else updated).add(ref)
    assert withdrawn
    assert updated


def test_rejected_events_are_the_expected_kinds(
    events: list[ScenarioEvent], protocol: Protocol
) -> None:
    checks = _referral_checks(events, protocol)
    kinds: Counter[str] = Counter()
    for i, event in enumerate(events):
        if event.expect != "rejected":
            continue
        if event.event_type == MARAC_RAISED and event.publisher in MARAC_PUBLISHERS:
            assert not checks[i].valid
            kinds["invalid-referral"] += 1
        elif event.event_type == MARAC_RAISED:
            kinds["unauthorised-marac"] += 1
        else:
            assert event.event_type == PUBWATCH_BAN
            assert event.data["decided_by"] == "police"
            kinds["police-ban"] += 1
    assert set(kinds) == {"unauthorised-marac", "invalid-referral", "police-ban"}
    assert sum(kinds.values()) < 0.06 * COUNT


def test_routed_events_come_from_permitted_publishers(events: list[ScenarioEvent]) -> None:
    for event in events:
        if event.expect != "routed":
            continue
        if event.event_type == MARAC_ACCESS:  # urgent care says it viewed a flag it holds
            assert event.publisher in URGENT_CARE
        elif event.event_type.startswith("uk.csp.marac."):
            assert event.publisher in MARAC_PUBLISHERS
        elif event.event_type == PUBWATCH_BAN:
            assert event.publisher.startswith("pubwatch.redditch.")
            assert event.data["decided_by"] in ("scheme_board", "scheme_chair")
        elif event.event_type == RETAIL_EXCLUSION:  # the partnership publishes its own
            assert event.publisher.startswith("bcrp.redditch.")
            assert event.data["decided_by"] == "scheme_board"
        else:
            assert event.publisher == "west-mercia-police"


def test_expectations_agree_with_the_protocol(
    events: list[ScenarioEvent], protocol: Protocol
) -> None:
    checks = _referral_checks(events, protocol)
    for i, event in enumerate(events):
        assert protocol.party(event.publisher) is not None
        if i in checks and not checks[i].valid:  # the router refuses it before the engine
            assert event.expect == "rejected"
            continue
        decision = evaluate(
            protocol,
            event_id=f"scenario-{i}",
            event_type=event.event_type,
            publisher=event.publisher,
            data=event.data,
        )
        assert decision.rejected == (event.expect == "rejected"), (event.note, decision)
        if not decision.rejected:
            assert decision.deliveries, f"routed event reaches nobody: {event.note}"


# -- samples and examples --------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_sample_event_is_routed_and_valid(event_type: str, registry: SchemaRegistry) -> None:
    event = sample_event(event_type)
    assert event.event_type == event_type
    assert event.expect == "routed"
    registry.encode(event_type, event.data)
    assert sample_event(event_type) == event


def test_sample_event_matches_fields() -> None:
    event = sample_event(SOCJAG_INTEL, seed=2, where={"handling_code": "C"})
    assert event.data["handling_code"] == "C"
    event = sample_event(MARAC_RAISED, where={"address.district": "wyre_forest"})
    assert event.data["address"]["district"] == "wyre_forest"


def test_sample_event_refuses_what_it_cannot_give() -> None:
    with pytest.raises(SchemaError, match="expected one of"):
        sample_event("uk.csp.delivery.ack.v1")
    with pytest.raises(SchemaError, match="no routed"):
        sample_event(PUBWATCH_BAN, where={"scheme": "bromsgrove"})


def test_example_files_are_what_the_script_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_examples.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(p.name for p in EXAMPLES.glob("*.json"))
    assert "marac-flag-raised-redditch.json" in written
    for name in written:
        assert (tmp_path / name).read_text() == (EXAMPLES / name).read_text(), name


def test_example_files_publish_as_is(registry: SchemaRegistry, protocol: Protocol) -> None:
    expected = {
        "marac-flag-raised-redditch.json": ("address", "district", "redditch"),
        "socjag-intel-p.json": ("handling_code", None, "P"),
        "socjag-intel-c.json": ("handling_code", None, "C"),
        "pubwatch-ban-theft.json": ("incident_type", None, "theft"),
        "pubwatch-ban-violence.json": ("incident_type", None, "violence"),
        "retail-exclusion-theft.json": ("incident_type", None, "theft"),
    }
    for name, (field, sub, value) in expected.items():
        document = json.loads((EXAMPLES / name).read_text())
        assert set(document) == {"type", "source", "data"}
        registry.encode(document["type"], document["data"])
        held = document["data"][field]
        assert (held[sub] if sub else held) == value
        decision = evaluate(
            protocol,
            event_id=name,
            event_type=document["type"],
            publisher=document["source"],
            data=document["data"],
        )
        assert not decision.rejected
        assert decision.deliveries
