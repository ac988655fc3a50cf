"""Scenario: one ASB Case Review from application to outcome, and an appeal (issue 19).

The coordinator records an application; the relevant bodies answer with their complaints;
one housing provider misses the answer deadline (10 working days, Easter skipped) and the
hub escalates it, once; when its late answer is in, the hub applies the protocol's threshold
and publishes its decision with the reasons; the review's outcome goes to every body, the
police acknowledge and complete their action, and an appeal to the PCC reopens the case until
the appeal's outcome. The applicant's identity reaches the police and the district's council
only: the ICB and the housing provider never receive it. `hub asb status`, `sweep` and
`report` are run as an operator would. Through the SDK and the CLI, on the embedded broker;
the tests move the hub's clock, so they run in file order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from hub.models import AuditDecision, Delivery
from tests import factories
from tests.conftest import wait_for
from tests.scenarios.harness import AUDIT_READER, TimedHub, timed_hub

pytestmark = pytest.mark.integration

COORDINATOR = "nwcsp.asb-case-review"
POLICE = "west-mercia-police"
COUNCIL = "bromsgrove-dc.community-safety"
ICB = "hw-icb"
HOUSING = "rp.bdht"
BODIES = {POLICE, COUNCIL, ICB, HOUSING}
# Wednesday 1 April 2026: Good Friday and Easter Monday fall in the first ten working days
START = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
CASE = "ASB-2026-0042"


class Review(TimedHub):
    """The moves of an ASB Case Review."""

    def publish(self, party: str, event_type: str, data: dict[str, Any], at_least: int = 1) -> str:
        event_id = self.hub.publish(party, event_type, data, key=str(data["case_ref"]))
        records = self.hub.wait_records(event_id, at_least=at_least)
        refused = [r.reason for r in records if r.decision == AuditDecision.REJECTED]
        assert not refused, refused
        return event_id

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("asb", "status", "--case", CASE, "--json")
        assert result.returncode in (0, 1), result.stderr
        (case,) = json.loads(result.stdout)["cases"]
        return result.returncode, case

    def sweep(self) -> list[dict[str, Any]]:
        result = self.cli("asb", "sweep", "--json")
        assert result.returncode == 0, result.stderr
        planned: list[dict[str, Any]] = json.loads(result.stdout)["planned"]
        return planned

    def hub_event(self, party: str, event_type: str, kind: str) -> Delivery:
        def matching(ds: list[Delivery]) -> list[Delivery]:
            return [
                d for d in ds if d.type == event_type and d.data["case_ref"] == CASE
                and (d.data.get("kind", kind) == kind)
            ]  # fmt: skip

        found = matching(self.hub.deliveries(party, until=lambda ds: bool(matching(ds))))
        return found[-1]


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Review]:
    with timed_hub(tmp_path_factory.mktemp("asb"), START) as (running, clock):
        yield Review(running, clock)


def complaint(ref: str, reported: str, incident: str, who: str) -> tuple[str, str, str, str]:
    return (ref, reported, incident, who)


def test_the_applicants_identity_reaches_only_the_bodies_whose_rule_lists_it(
    review: Review,
) -> None:
    application = review.publish(
        COORDINATOR, factories.ASB_APPLICATION, factories.asb_application(CASE), at_least=4
    )
    delivered = {
        str(r.recipient): r
        for r in review.hub.wait_records(application, at_least=4)
        if r.decision == AuditDecision.DELIVERED
    }
    assert set(delivered) == BODIES  # not Redditch's or Wyre Forest's bodies, nor any scheme
    for party in (POLICE, COUNCIL):
        data = review.received(party, application).data
        assert data["applicant"]["name"] == factories.ASB_APPLICANT_NAME
        assert "applicant.name" in delivered[party].fields or "applicant" in delivered[party].fields
    for party in (ICB, HOUSING):
        data = review.received(party, application).data
        assert "applicant" not in data
        assert "representative" not in data
        assert factories.ASB_APPLICANT_NAME not in json.dumps(data)
        assert data["applicant_ref"] == f"APP-{CASE}"
        assert not {f for f in delivered[party].fields if f.startswith("applicant.")}
        assert "applicant" not in delivered[party].fields
        assert "Sch 4 para 7" in str(delivered[party].gateway)
    # an event for a case with no application is refused, with why
    refused = review.hub.publish(
        COORDINATOR, factories.ASB_OUTCOME, factories.asb_outcome("ASB-2026-9999"),
        key="ASB-2026-9999",
    )  # fmt: skip
    (record,) = review.hub.wait_records(refused)
    assert record.decision == AuditDecision.REJECTED
    assert "ASB-2026-9999 has no application" in str(record.reason)


def test_a_missed_answer_is_escalated_once_and_the_threshold_waits_for_it(review: Review) -> None:
    review.publish(
        COORDINATOR,
        factories.ASB_ACKNOWLEDGED,
        {"case_ref": CASE, "district": "bromsgrove", "acknowledged_on": "2026-04-09"},
        at_least=4,
    )
    police = [
        complaint("WMP-1", "2026-01-12", "2026-01-10", "CP-A"),
        complaint("WMP-2", "2026-02-20", "2026-02-18", "CP-B"),
        complaint("WMP-OLD", "2026-03-30", "2025-12-01", "CP-A"),  # reported four months late
    ]
    council = [complaint("BDC-7", "2026-03-02", "2026-02-27", "CP-A")]
    review.publish(POLICE, factories.ASB_COMPLAINTS, factories.asb_complaints(CASE, police))
    review.publish(COUNCIL, factories.ASB_COMPLAINTS, factories.asb_complaints(CASE, council))
    review.publish(ICB, factories.ASB_COMPLAINTS, factories.asb_complaints(CASE))
    # before the answers' day nothing is due: the threshold waits for the housing provider
    review.at(dt.date(2026, 4, 17))  # the 10th working day after 1 April, Easter skipped
    assert review.sweep() == []
    review.at(dt.date(2026, 4, 20))
    planned = review.sweep()
    assert [(p["kind"], p["case_ref"]) for p in planned] == [("answer_overdue", CASE)]
    for party in (COORDINATOR, HOUSING):  # the coordinator and the late body are told
        alert = review.hub_event(party, factories.ASB_ALERT, "answer_overdue")
        assert alert.data["parties"] == [HOUSING]
        assert "2026-04-17" in alert.data["detail"]
    code, status = review.status()
    assert code == 1  # overdue: a scheduled job can alert on it
    assert status["stage"] == "received"
    (late,) = [d for d in status["deadlines"] if d["overdue"]]
    assert (late["kind"], late["party"], late["due_on"]) == ("answer", HOUSING, "2026-04-17")
    assert status["escalated"] == ["answer_overdue"]
    assert review.sweep() == []  # once, not on every sweep


def test_the_hub_publishes_the_threshold_decision_with_its_reasons(review: Review) -> None:
    review.publish(HOUSING, factories.ASB_COMPLAINTS, factories.asb_complaints(CASE))
    planned = review.sweep()
    assert [(p["kind"], p["event_type"]) for p in planned] == [
        ("threshold_met", factories.ASB_THRESHOLD)
    ]
    decision = review.hub_event(COORDINATOR, factories.ASB_THRESHOLD, "")
    assert decision.data["met"] is True
    assert decision.data["qualifying_complaints"] == 3
    reasons = "\n".join(decision.data["reasons"])
    assert "WMP-OLD reported 2026-03-30, incident 2025-12-01: does not qualify" in reasons
    assert "threshold met: 3 qualifying complaints" in reasons
    records = review.hub.wait_records(planned[0]["event_id"], at_least=5)
    delivered = [r for r in records if r.decision == AuditDecision.DELIVERED]
    assert {str(r.recipient) for r in delivered} == BODIES | {COORDINATOR}
    assert {str(r.recipient): r.rule for r in delivered} == {
        COORDINATOR: "asb-threshold-met",
        **{party: "asb-threshold-met-bodies" for party in BODIES},
    }
    for party in BODIES:
        received = review.received(party, planned[0]["event_id"]).data
        assert received["met"] is True
        assert "reasons" not in received  # they name the other bodies' complaint references

    def review_stage() -> str:
        return str(review.status()[1]["stage"])

    assert wait_for(lambda: review_stage() == "review" or None, what="stage review")
    code, status = review.status()
    answer = next(d for d in status["deadlines"] if d["party"] == HOUSING)
    assert answer["late"]
    assert not answer["overdue"]
    assert code == 0


def test_outcome_actions_and_an_appeal_that_reopens_the_case(review: Review) -> None:
    outcome = review.publish(
        COORDINATOR, factories.ASB_OUTCOME, factories.asb_outcome(CASE), at_least=4
    )
    assert {
        str(r.recipient)
        for r in review.hub.records(outcome)
        if r.decision == AuditDecision.DELIVERED
    } == BODIES
    assert review.status()[1]["stage"] == "actions"
    # a body may only act on the actions recommended to it
    refused = review.hub.publish(
        HOUSING, factories.ASB_ACTION, factories.asb_action(CASE), key=CASE
    )
    assert "expected an action the review recommended to rp.bdht" in str(
        review.hub.wait_records(refused)[0].reason
    )
    review.publish(POLICE, factories.ASB_ACTION, factories.asb_action(CASE))
    review.publish(
        POLICE, factories.ASB_ACTION, factories.asb_action(CASE, "completed", on="2026-05-05")
    )
    review.at(dt.date(2026, 5, 11))
    _, status = review.status()
    assert status["stage"] == "closed"
    assert status["actions"][0]["completed_on"] == "2026-05-05"

    review.publish(COORDINATOR, factories.ASB_APPEAL, factories.asb_appeal(CASE), at_least=4)
    _, status = review.status()
    assert (status["stage"], status["reopened"]) == ("appeal", 1)
    appeal = next(d for d in status["deadlines"] if d["kind"] == "appeal_review")
    assert appeal["due_on"] == "2026-06-09"  # 20 working days, the spring bank holiday skipped
    review.publish(
        COORDINATOR,
        factories.ASB_OUTCOME,
        factories.asb_outcome(
            CASE, outcome="appeal_dismissed", appeal_ref=f"AP-{CASE}", meeting_on=None,
            decided_on="2026-05-20", recommendations=[],
        ),
        at_least=4,
    )  # fmt: skip
    _, status = review.status()
    assert status["stage"] == "closed"
    assert status["outcome"] == "appeal_dismissed"


def test_the_years_figures_come_from_the_audit_log(review: Review) -> None:
    result = review.cli("asb", "report", "--year", "2026", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert {k: figures[k] for k in (
        "applications", "thresholds_met", "thresholds_not_met", "outcomes", "appeals"
    )} == {"applications": 1, "thresholds_met": 1, "thresholds_not_met": 0, "outcomes": 2,
           "appeals": 1}  # fmt: skip
    assert (
        json.loads(review.cli("asb", "report", "--year", "2025", "--json").stdout)["applications"]
        == 0
    )
    text = review.cli("asb", "report", "--year", "2026").stdout
    assert "applications" in text


def test_a_subject_access_request_finds_the_applicant_by_reference(review: Review) -> None:
    result = review.cli("audit", "sar", "--subject", f"APP-{CASE}", "--json", *AUDIT_READER)
    assert result.returncode == 0, result.stderr
    disclosures = json.loads(result.stdout)["disclosures"]
    applications = {
        d["recipient"]: d for d in disclosures if d["event_type"] == factories.ASB_APPLICATION
    }
    assert set(applications) == BODIES
    # what the applicant is told each body received: their identity at two bodies only
    assert {p for p, d in applications.items() if "applicant" in d["fields"]} == {POLICE, COUNCIL}
