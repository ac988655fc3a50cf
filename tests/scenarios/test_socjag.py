"""Scenario: SOCJAG intelligence through the hub on the embedded broker, the clock set by the test.

Each test asserts who received what and what the audit says: handling code C conditions travel
with the item and a party that cannot meet them gets nothing (audited, naming them);
OFFICIAL-SENSITIVE reaches need-to-know parties only; 5x5x5 items are accepted marked as
legacy, or refused with the reason; a sanitised version circulates wider, linked to the
original in the audit. Expected recipients come from the reference protocol's declarations.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from hub.clock import FileClock
from hub.models import AuditDecision, AuditRecord
from hub.policies.engine import evaluate
from hub.policies.loader import load_protocol
from hub.settings import default_protocol_path
from tests.conftest import RunningHub, unique
from tests.factories import (
    SOCJAG,
    SOCJAG_SANITISED,
    socjag_intel,
    socjag_legacy,
    socjag_sanitised,
)
from tests.scenarios.harness import AUDIT_READER, TimedHub, timed_hub

pytestmark = pytest.mark.integration

REF = load_protocol(default_protocol_path())
POLICE = "west-mercia-police"
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
DEPARTMENT_FEEDS = {p.id for p in REF.parties if p.scope == "department"}
PARTIES = {p.id: p for p in REF.parties}


def can_meet(requirements: set[str]) -> set[str]:
    return {p.id for p in REF.parties if requirements <= set(p.handling)}


class Scenario(TimedHub):
    """A hub with a clock; the police publish, the test watches the audit and the topics."""

    def __init__(self, hub: RunningHub, clock: FileClock) -> None:
        super().__init__(hub, clock)
        self._outcomes: dict[str, int] = {}

    def publish(self, event_type: str, data: dict[str, Any]) -> str:
        event_id = self.hub.publish(POLICE, event_type, data, key=data["intel_ref"])
        # how many audit records to wait for: one per party the protocol considers
        decision = evaluate(REF, event_id=event_id, event_type=event_type, publisher=POLICE,
                            data=data)  # fmt: skip
        self._outcomes[event_id] = len(decision.recipients)
        return event_id

    def records(self, event_id: str) -> dict[str, AuditRecord]:
        """Audit records by recipient, once every party the protocol considered is in."""
        records = self.hub.wait_records(event_id, at_least=self._outcomes[event_id])
        return {str(r.recipient): r for r in records}

    def never_received(self, party: str, event_id: str) -> bool:
        return event_id not in {d.id for d in self.hub.deliveries(party)}


def delivered(records: dict[str, AuditRecord]) -> set[str]:
    return {p for p, r in records.items() if r.decision == AuditDecision.DELIVERED}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with timed_hub(tmp_path_factory.mktemp("socjag"), START) as (running, clock):
        yield Scenario(running, clock)


def test_c_conditions_travel_and_parties_that_cannot_meet_them_get_nothing(
    scenario: Scenario,
) -> None:
    named = ["probation", "redditch-bc.community-safety", "wrs"]
    wanted = {"no-onward-disclosure", "secure-storage"}
    data = socjag_intel(
        unique("SJ"), handling_code="C", share_with=named, requirements=sorted(wanted)
    )
    event_id = scenario.publish(SOCJAG, data)
    records = scenario.records(event_id)
    expected = set(named) & can_meet(wanted)
    assert expected  # someone can meet them, someone cannot: both paths are exercised
    assert set(named) - expected
    assert delivered(records) == expected
    for party in expected:
        got = scenario.received(party, event_id)
        assert got.rule == "socjag-intel-c-conditions"
        assert got.data["handling_conditions"] == data["handling_conditions"]
        assert "handling_conditions" in records[party].fields
    for party in set(named) - expected:
        withheld = records[party]
        assert withheld.decision == AuditDecision.WITHHELD
        assert withheld.rule == "socjag-intel-c-conditions"
        missing = sorted(wanted - set(PARTIES[party].handling))
        assert f"cannot meet {', '.join(missing)}" in (withheld.reason or "")
        assert scenario.never_received(party, event_id)

    # the recipient's console shows the conditions above the payload
    shown = scenario.cli("consume", "--as", sorted(expected)[0], "--no-ack")
    assert shown.returncode == 0, shown.stderr
    assert f"HANDLING CODE C: {data['handling_conditions']['conditions']}" in shown.stdout
    assert f"YOU MUST MEET: {', '.join(sorted(wanted))}" in shown.stdout


def test_official_sensitive_never_reaches_a_department_feed_even_when_named(
    scenario: Scenario,
) -> None:
    named = ["probation", "wrs", "redditch-bc.community-safety", "hwfrs"]
    data = socjag_intel(
        unique("SJ"), handling_code="C", classification="OFFICIAL-SENSITIVE", share_with=named
    )
    event_id = scenario.publish(SOCJAG, data)
    records = scenario.records(event_id)
    assert delivered(records) == set(named) - DEPARTMENT_FEEDS
    for party in set(named) & DEPARTMENT_FEEDS:
        assert records[party].decision == AuditDecision.WITHHELD
        assert records[party].rule == "sensitive-never-department-wide"
        assert scenario.never_received(party, event_id)

    # handling code P: the need-to-know rule, and no department feed at all
    plain = scenario.publish(
        SOCJAG, socjag_intel(unique("SJ"), classification="OFFICIAL-SENSITIVE")
    )
    records = scenario.records(plain)
    assert delivered(records)
    assert not delivered(records) & DEPARTMENT_FEEDS
    assert {r.rule for p, r in records.items() if p in delivered(records)} == {
        "socjag-intel-p-sensitive"
    }


def test_a_5x5x5_item_is_accepted_and_marked_as_legacy(scenario: Scenario) -> None:
    assert REF.socjag is not None
    assert REF.socjag.accept_5x5x5  # the reference protocol allows them (see its comment)
    data = socjag_legacy(unique("SJ"))
    event_id = scenario.publish(SOCJAG, data)
    records = scenario.records(event_id)
    assert delivered(records)
    for record in records.values():
        assert "graded 5x5x5 (legacy)" in (record.reason or "")
    party = sorted(delivered(records))[0]
    assert "graded 5x5x5 (legacy)" in (records[party].condition or "")
    got = scenario.received(party, event_id)
    assert got.data["grading_system"] == "5x5x5"
    assert got.data["legacy_grading"] == data["legacy_grading"]


def test_a_5x5x5_item_its_handling_code_keeps_in_house_is_refused(scenario: Scenario) -> None:
    event_id = scenario.publish(SOCJAG, socjag_legacy(unique("SJ"), handling=4))
    records = scenario.hub.wait_records(event_id)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "5x5x5 handling code 4" in (records[0].reason or "")
    notices = scenario.hub.deliveries(
        POLICE, until=lambda ds: any(d.data.get("rejected_event_id") == event_id for d in ds)
    )
    notice = next(d for d in notices if d.data.get("rejected_event_id") == event_id)
    assert "5x5x5 handling code 4" in notice.data["detail"]
    assert scenario.never_received("probation", event_id)


def test_a_sanitised_version_circulates_wider_linked_to_the_original(scenario: Scenario) -> None:
    ref = unique("SJ")
    original = scenario.publish(SOCJAG, socjag_intel(ref))
    first = scenario.records(original)
    sanitised = scenario.publish(SOCJAG_SANITISED, socjag_sanitised(ref, original))
    records = scenario.records(sanitised)
    wider = delivered(records) - delivered(first)
    assert wider  # housing and tenancy of the item's district, who did not get the original
    assert all(PARTIES[p].has_role("socjag-circulation") for p in wider)
    assert not {p.id for p in REF.parties if p.kind in {"pubwatch", "retail"}} & delivered(records)
    for party in wider:
        got = scenario.received(party, sanitised)
        assert got.data["sanitised_from"] == original
        assert not {k for k in got.data if "grade" in k or "handling" in k}
    for record in records.values():  # every audit record names the original
        assert f"sanitised version of event {original}" in (record.reason or "")

    # one chronology holds both, the sanitised one naming the original
    result = scenario.cli("audit", "chronology", "--case", ref, "--json", *AUDIT_READER)
    assert result.returncode == 0, result.stderr
    entries = {e["event_id"]: e for e in json.loads(result.stdout)["entries"]}
    assert {original, sanitised} <= set(entries)
    assert entries[sanitised]["event_type"] == SOCJAG_SANITISED
    link = f"sanitised version of event {original}"
    assert all(link in (r["condition"] or "") for r in entries[sanitised]["received"])
    recipients = scenario.cli("audit", "recipients", "--event", sanitised, "--json", *AUDIT_READER)
    assert recipients.returncode == 0, recipients.stderr
    assert link in recipients.stdout
