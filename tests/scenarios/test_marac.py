"""Scenario: MARAC flags through their lifecycle on the embedded broker, time moved by the test.

Each test asserts who received what and what the audit says. The hub's clock is a file
(HUB_CLOCK_FILE); the periodic sweep is off, so `hub marac sweep` runs exactly when the test
says, as an operator's cron job would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from hub.client import HubClient
from hub.models import AuditDecision, Delivery
from hub.workflows.register import FlagRegister
from tests.conftest import unique
from tests.factories import MARAC_RAISED, MARAC_UPDATED, marac_flag
from tests.scenarios.harness import AUDIT_READER, TimedHub, timed_hub

pytestmark = pytest.mark.integration

COORDINATOR = "marac.north-worcs"
POLICE = "west-mercia-police"
REDDITCH = {
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
    "redditch-bc.community-safety",
}
BROMSGROVE = {"bromsgrove-dc.housing", "bromsgrove-dc.community-safety"}
ALERT = "uk.csp.marac.alert.v1"
EXPIRED = "uk.csp.marac.flag.expired.v1"
OBSERVATION = "uk.csp.marac.observation.v1"
REFERRED = "uk.csp.marac.observation.referred.v1"
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


class Scenario(TimedHub):
    """A hub with a clock, and the moves a scenario makes on it."""

    def status(self, case: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("marac", "status", "--case", case, "--json")
        assert result.returncode in (0, 1), result.stderr
        flags = json.loads(result.stdout)["flags"]
        assert len(flags) == 1, flags
        return result.returncode, flags[0]

    def sweep(self) -> dict[str, Any]:
        result = self.cli("marac", "sweep", "--json")
        assert result.returncode == 0, result.stderr
        swept: dict[str, Any] = json.loads(result.stdout)
        return swept

    def raise_flag(self, case: str, **overrides: Any) -> str:
        event_id = self.hub.publish(
            COORDINATOR, MARAC_RAISED, marac_flag(case, **overrides), key=case
        )
        self.hub.wait_records(event_id, at_least=8)
        return event_id

    def delivered_to(self, event_id: str) -> set[str]:
        return {
            str(r.recipient)
            for r in self.hub.wait_records(event_id)
            if r.decision == AuditDecision.DELIVERED
        }

    def alerts(self, case: str, kind: str) -> list[Delivery]:
        def matching(ds: list[Delivery]) -> list[Delivery]:
            return [
                d for d in ds if d.type == ALERT and d.data["case_ref"] == case
                and d.data["kind"] == kind
            ]  # fmt: skip

        return matching(self.hub.deliveries(COORDINATOR, until=lambda ds: bool(matching(ds))))

    def acknowledge(self, party: str, event_id: str) -> None:
        delivery = self.received(party, event_id)

        async def run() -> None:
            async with HubClient(party, bootstrap=self.hub.bootstrap, keys=self.hub.keys) as c:
                await c.acknowledge(delivery)

        asyncio.run(run())


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    with timed_hub(tmp_path_factory.mktemp("marac"), START) as (running, clock):
        yield Scenario(running, clock)


def test_overdue_acknowledgements_are_shown_and_escalated_once(scenario: Scenario) -> None:
    case = unique("MARAC")
    raised = scenario.raise_flag(case)
    assert {POLICE} | REDDITCH <= scenario.delivered_to(raised)  # the publisher is not sent its own
    acked, late = sorted(REDDITCH)[:2], sorted(REDDITCH)[2]
    for party in acked:
        scenario.acknowledge(party, raised)
    scenario.hub.wait_records(raised, at_least=10)

    code, status = scenario.status(case)
    assert code == 0  # nobody is overdue yet
    by_party = {d["party"]: d for d in status["departments"]}
    assert set(by_party) == REDDITCH
    assert all(by_party[p]["acknowledged_at"] for p in acked)
    assert by_party[late]["acknowledged_at"] is None
    assert not by_party[late]["overdue"]

    scenario.clock.advance(dt.timedelta(days=3))  # past the protocol's P2D
    code, status = scenario.status(case)
    assert code == 1
    overdue = [d["party"] for d in status["departments"] if d["overdue"]]
    assert overdue == [late]

    swept = scenario.sweep()
    kinds = {(p["case_ref"], p["kind"]) for p in swept["planned"]}
    assert (case, "ack_overdue") in kinds
    alert = scenario.alerts(case, "ack_overdue")
    assert [a.data["parties"] for a in alert] == [[late]]
    assert scenario.status(case)[1]["escalated"] == [late]
    again = scenario.sweep()  # escalated once, not on every sweep
    assert (case, "ack_overdue") not in {(p["case_ref"], p["kind"]) for p in again["planned"]}


def test_an_update_reaches_every_earlier_holder_without_the_new_address(
    scenario: Scenario,
) -> None:
    case = unique("MARAC")
    raised = scenario.raise_flag(case)
    assert REDDITCH <= scenario.delivered_to(raised)
    moved = marac_flag(case, district="bromsgrove", risk_level="high")
    updated = scenario.hub.publish(COORDINATOR, MARAC_UPDATED, moved, key=case)
    records = scenario.hub.wait_records(updated, at_least=len(REDDITCH | BROMSGROVE) + 2)
    delivered = {r.recipient: r for r in records if r.decision == AuditDecision.DELIVERED}
    assert REDDITCH | BROMSGROVE | {POLICE} <= set(delivered)
    for party in REDDITCH:  # no rule selects them now: the Art 19 correction does
        assert delivered[party].rule == "marac-art19-holders"
        assert "address" not in delivered[party].fields
        got = scenario.received(party, updated)
        assert "address" not in got.data
        assert got.data["case_ref"] == case
    for party in BROMSGROVE:
        assert delivered[party].rule == "marac-flag-district-departments"
        assert scenario.received(party, updated).data["address"]["district"] == "bromsgrove"


def test_review_prompt_then_expiry_at_every_holder(scenario: Scenario) -> None:
    case = unique("MARAC")
    now = scenario.clock()
    review = (now + dt.timedelta(days=30)).date()
    raised = scenario.raise_flag(case, review_date=review.isoformat())
    holders = scenario.delivered_to(raised)

    scenario.clock.set(dt.datetime.combine(review, dt.time(9), tzinfo=dt.UTC))
    swept = scenario.sweep()
    assert (case, "review_due") in {(p["case_ref"], p["kind"]) for p in swept["planned"]}
    prompt = scenario.alerts(case, "review_due")
    assert prompt[0].data["due_on"] == review.isoformat()

    scenario.clock.set(
        dt.datetime.combine(review + dt.timedelta(days=15), dt.time(9), tzinfo=dt.UTC)
    )
    swept = scenario.sweep()
    expiry = next(
        p for p in swept["planned"] if p["case_ref"] == case and p["kind"] == "flag_expired"
    )
    records = scenario.hub.wait_records(expiry["event_id"], at_least=len(holders))
    got = {str(r.recipient) for r in records if r.decision == AuditDecision.DELIVERED}
    # every party that held the flag, and the coordinator, each expiry audited
    assert got == holders | {COORDINATOR}
    for party in REDDITCH:
        assert scenario.received(party, expiry["event_id"]).type == EXPIRED
    with FlagRegister(scenario.hub.settings.register_path) as register:
        flag = register.flag(case)
        assert flag is not None
        assert flag.status == "expired"
    assert case not in {p["case_ref"] for p in scenario.sweep()["planned"]}


def test_a_legal_hold_keeps_a_flag_from_expiring(scenario: Scenario) -> None:
    case = unique("MARAC")
    review = (scenario.clock() + dt.timedelta(days=10)).date()
    scenario.raise_flag(case, review_date=review.isoformat())
    hold = scenario.cli("holds", "add", "--case", case, "--reason", "DHR 2026/07",
                        "--by", "ig.officer")  # fmt: skip
    assert hold.returncode == 0, hold.stderr
    scenario.clock.set(
        dt.datetime.combine(review + dt.timedelta(days=20), dt.time(9), tzinfo=dt.UTC)
    )
    swept = scenario.sweep()
    assert case in swept["held"]
    mine = {p["kind"] for p in swept["planned"] if p["case_ref"] == case}
    assert "flag_expired" not in mine
    assert "expiry_held" in mine
    with FlagRegister(scenario.hub.settings.register_path) as register:
        flag = register.flag(case)
        assert flag is not None
        assert flag.status == "active"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"referral_reason": "dash", "dash_score": 10}, "needs a score of 14 or more"),
        ({"referral_reason": "dash", "dash_score": 16, "risk_level": "medium"},
         "cannot lower a DASH-based level"),
        ({"referral_reason": "professional_judgement", "dash_score": 9}, "written rationale"),
        ({"referral_reason": "repeat", "dash_score": 5}, "after that it is a new referral"),
    ],
)  # fmt: skip
def test_invalid_referrals_are_refused_with_the_reason(
    scenario: Scenario, overrides: dict[str, Any], expected: str
) -> None:
    case = unique("MARAC")
    event_id = scenario.hub.publish(COORDINATOR, MARAC_RAISED, marac_flag(case, **overrides))
    records = scenario.hub.wait_records(event_id)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert expected in (records[0].reason or "")
    notices = scenario.hub.deliveries(
        COORDINATOR,
        until=lambda ds: any(d.data.get("rejected_event_id") == event_id for d in ds),
    )
    assert any(
        expected in d.data["detail"] for d in notices if d.data.get("rejected_event_id") == event_id
    )


def test_professional_judgement_with_a_rationale_and_repeat_referrals(scenario: Scenario) -> None:
    first = unique("MARAC")
    subject = f"SUBJ-{unique('R')}"
    scenario.raise_flag(
        first,
        subject_ref=subject,
        referral_reason="professional_judgement",
        dash_score=9,
        risk_level="high",
        rationale="Escalating coercive control; victim withdrew from DASH questions.",
    )
    scenario.clock.advance(dt.timedelta(days=60))
    second = unique("MARAC")
    scenario.raise_flag(second, subject_ref=subject, referral_reason="repeat", dash_score=6)
    swept = scenario.sweep()
    assert (second, "repeat_referral") in {(p["case_ref"], p["kind"]) for p in swept["planned"]}
    alert = scenario.alerts(second, "repeat_referral")
    assert alert


def test_a_department_observation_reaches_the_coordinator_then_the_police(
    scenario: Scenario,
) -> None:
    case = unique("MARAC")
    scenario.raise_flag(case)
    observation_id = unique("OBS")
    observed = scenario.hub.publish(
        "redditch-bc.housing-repairs",
        OBSERVATION,
        {
            "observation_id": observation_id,
            "case_ref": case,
            "observed_on": scenario.clock().date().isoformat(),
            "category": "property_damage",
            "summary": "Repair request: front-door lock damaged, tenant says by ex-partner.",
            "reported_by": {"name": "Repairs desk", "phone": "01527 000300",
                            "email": "repairs@example.gov.uk"},
        },
        key=case,
    )  # fmt: skip
    records = scenario.hub.wait_records(observed)
    assert {str(r.recipient) for r in records if r.decision == AuditDecision.DELIVERED} == {
        COORDINATOR
    }
    referred = scenario.hub.publish(
        COORDINATOR,
        REFERRED,
        {
            "observation_id": observation_id,
            "case_ref": case,
            "category": "property_damage",
            "summary": "Front-door lock damaged by the perpetrator; victim at risk.",
            "consent": {"basis": "would_prejudice_protection", "recorded_by": "MARAC coordinator",
                        "recorded_on": scenario.clock().date().isoformat(),
                        "rationale": "Asking would alert the perpetrator, who has a key."},
            "contact": {"name": "MARAC coordinator", "phone": "01527 000200",
                        "email": "marac@example.gov.uk"},
        },
        key=case,
    )  # fmt: skip
    records = scenario.hub.wait_records(referred)
    delivered = [r for r in records if r.decision == AuditDecision.DELIVERED]
    assert [r.recipient for r in delivered] == [POLICE]
    assert "relied on consent.basis=would_prejudice_protection" in (delivered[0].condition or "")
    # both steps are in the case's chronology
    result = scenario.cli("audit", "chronology", "--case", case, "--json", *AUDIT_READER)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert observed in text
    assert referred in text
