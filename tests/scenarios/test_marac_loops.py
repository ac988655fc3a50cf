"""Scenario: MARAC loops that close without a person remembering (issue 17).

An update cannot lower a DASH level, a low-score repeat within 12 months is a repeat,
departments' flag-only notices carry the MARAC date, and every overdue acknowledgement
(of a withdrawal or an expiry too) is escalated once, with `hub marac status` saying
"escalated" only of a delivery an alert named. Through the commands and SDK users use, on
the embedded broker; the test moves the hub's clock, so the tests run in file order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.client import HubClient
from hub.models import AuditDecision, Delivery
from tests.conftest import unique, wait_for
from tests.factories import MARAC_RAISED, MARAC_UPDATED, MARAC_WITHDRAWN, marac_flag
from tests.factories import marac_withdrawn as withdrawn_payload
from tests.scenarios.harness import TimedHub, timed_hub

pytestmark = pytest.mark.integration

COORDINATOR = "marac.north-worcs"
REDDITCH = (
    "redditch-bc.community-safety",
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
)
ALERT = "uk.csp.marac.alert.v1"
# early enough that eleven months on the MARAC agreement (review date 2027-09-30) holds
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


class Loops(TimedHub):
    """The moves these scenarios make."""

    def status(self, case: str) -> tuple[int, dict[str, Any], str]:
        """`hub marac status --case` as JSON, and as the coordinator reads it."""
        result = self.cli("marac", "status", "--case", case, "--json")
        assert result.returncode in (0, 1), result.stderr
        text = self.cli("marac", "status", "--case", case)
        flags = json.loads(result.stdout)["flags"]
        assert len(flags) == 1, flags
        return result.returncode, flags[0], text.stdout

    def sweep(self) -> set[tuple[str, str]]:
        result = self.cli("marac", "sweep", "--json")
        assert result.returncode == 0, result.stderr
        return {(p["case_ref"], p["kind"]) for p in json.loads(result.stdout)["planned"]}

    def publish(self, event_type: str, data: dict[str, Any], *, at_least: int = 1) -> str:
        case = str(data["case_ref"])
        event_id = self.hub.publish(COORDINATOR, event_type, data, key=case)
        self.hub.wait_records(event_id, at_least=at_least)
        return event_id

    def delivered(self, event_id: str) -> set[str]:
        return {
            str(r.recipient)
            for r in self.hub.wait_records(event_id)
            if r.decision == AuditDecision.DELIVERED
        }

    def acknowledge(self, party: str, event_id: str) -> None:
        delivery = self.received(party, event_id)

        async def run() -> None:
            async with HubClient(party, bootstrap=self.hub.bootstrap, keys=self.hub.keys) as c:
                await c.acknowledge(delivery)

        asyncio.run(run())
        self.hub.wait_records(event_id, at_least=len(self.hub.records(event_id)) + 1)

    def overdue_alerts(self, case: str, count: int) -> list[Delivery]:
        def matching(ds: list[Delivery]) -> list[Delivery]:
            return [
                d for d in ds if d.type == ALERT and d.data["case_ref"] == case
                and d.data["kind"] == "ack_overdue"
            ]  # fmt: skip

        return matching(
            self.hub.deliveries(COORDINATOR, until=lambda ds: len(matching(ds)) >= count)
        )


@pytest.fixture(scope="module")
def loops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loops]:
    with timed_hub(tmp_path_factory.mktemp("marac-loops"), START) as (running, clock):
        yield Loops(running, clock)


def test_an_update_cannot_lower_a_dash_based_level(loops: Loops, tmp_path: Path) -> None:
    case = unique("MARAC")
    loops.publish(MARAC_RAISED, marac_flag(case), at_least=5)
    update = marac_flag(case, dash_score=15, risk_level="medium", change_reason="seems calmer")
    path = tmp_path / "update.json"
    path.write_text(json.dumps(update))
    event_id = unique("EV")
    result = loops.cli(
        "publish", "--as", COORDINATOR, "--type", MARAC_UPDATED, "--data", str(path),
        "--id", event_id, "--wait",
    )  # fmt: skip
    said = result.stdout + result.stderr
    assert result.returncode != 0, said  # hub publish refuses it before sending
    assert "cannot lower a DASH-based level" in said
    assert "a DASH score of 15 is visible high risk" in said
    # an agency system that sends it anyway (the SDK without the protocol) is refused by
    # the hub itself, and the update is shared with nobody
    refused = loops.hub.publish(COORDINATOR, MARAC_UPDATED, update, key=case)
    records = loops.hub.wait_records(refused)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "cannot lower a DASH-based level" in records[0].reason
    # an update that keeps the level is routed as before
    kept = loops.publish(MARAC_UPDATED, marac_flag(case, dash_score=15, change_reason="new"))
    assert set(REDDITCH) <= loops.delivered(kept)


def test_department_notices_carry_the_marac_date(loops: Loops) -> None:
    case = unique("MARAC")
    raised = loops.publish(MARAC_RAISED, marac_flag(case, marac_date="2026-11-17"), at_least=5)
    for party in REDDITCH:
        data = loops.received(party, raised).data
        assert data["marac_date"] == "2026-11-17"
        assert not {"notes", "dash_score", "rationale", "referral_reason"} & set(data)


def test_overdue_acknowledgements_of_withdrawals_are_escalated_once(loops: Loops) -> None:
    case = unique("MARAC")
    raised = loops.publish(MARAC_RAISED, marac_flag(case), at_least=5)
    late = "redditch-bc.housing-repairs"
    for party in REDDITCH:
        if party != late:
            loops.acknowledge(party, raised)
    loops.clock.advance(dt.timedelta(days=3))  # past the protocol's P2D
    assert (case, "ack_overdue") in loops.sweep()  # the raised flag, for the late department
    assert [a.data["parties"] for a in loops.overdue_alerts(case, 1)] == [[late]]

    withdrawn = loops.publish(MARAC_WITHDRAWN, withdrawn_payload(case), at_least=4)
    assert set(REDDITCH) <= loops.delivered(withdrawn)
    loops.acknowledge("redditch-bc.community-safety", withdrawn)
    loops.clock.advance(dt.timedelta(days=3))

    # the withdrawal is overdue at two departments and nobody has been told yet: the line
    # for the late department (its newest delivery) must not borrow the raised flag's
    # escalation
    code, status, text = loops.status(case)
    assert code == 1
    assert status["status"] == "withdrawn"
    late_line = next(line for line in text.splitlines() if late in line)
    assert "withdrawn" in late_line
    assert "OVERDUE" in late_line
    assert "escalated" not in late_line
    overdue = {
        (d["event_id"], d["party"]): d["escalated"] for d in status["departments"] if d["overdue"]
    }
    assert overdue == {
        (raised, late): True,
        (withdrawn, late): False,
        (withdrawn, "redditch-bc.neighbourhood-tenancy"): False,
    }

    # the sweep escalates the withdrawal's acknowledgements though the flag is withdrawn
    assert (case, "ack_overdue") in loops.sweep()
    alerts = loops.overdue_alerts(case, 2)
    assert sorted(a.data["parties"] for a in alerts) == [
        [late],
        [late, "redditch-bc.neighbourhood-tenancy"],
    ]
    assert any("withdrawal" in a.data["detail"] for a in alerts)
    _, status, text = loops.status(case)
    assert all(d["escalated"] for d in status["departments"] if d["overdue"])
    assert "escalated" in next(line for line in text.splitlines() if late in line)
    assert (case, "ack_overdue") not in loops.sweep()  # once, not on every sweep


def test_overdue_acknowledgements_of_an_expiry_are_escalated(loops: Loops) -> None:
    case = unique("MARAC")
    review = loops.today() + dt.timedelta(days=1)
    raised = loops.publish(
        MARAC_RAISED, marac_flag(case, review_date=review.isoformat()), at_least=5
    )
    for party in REDDITCH:
        loops.acknowledge(party, raised)
    loops.clock.advance(dt.timedelta(days=16))  # past the review date and the P14D grace
    assert (case, "flag_expired") in loops.sweep()

    def expiry_delivered() -> set[str]:
        _, status, _ = loops.status(case)
        return {
            d["party"] for d in status["departments"] if d["event_type"].endswith("expired.v1")
        } if status["status"] == "expired" else set()  # fmt: skip

    assert wait_for(expiry_delivered, what="the expiry at every holder") == set(REDDITCH)
    loops.clock.advance(dt.timedelta(days=3))
    code, status, _ = loops.status(case)
    assert code == 1
    assert {d["party"] for d in status["departments"] if d["overdue"]} == set(REDDITCH)
    assert (case, "ack_overdue") in loops.sweep()
    (alert,) = loops.overdue_alerts(case, 1)
    assert alert.data["parties"] == sorted(REDDITCH)
    assert "the expiry of flag" in alert.data["detail"]


def test_a_low_score_repeat_within_twelve_months_is_a_repeat(loops: Loops) -> None:
    subject = f"SUBJ-{unique('R')}"
    first = unique("MARAC")
    loops.publish(MARAC_RAISED, marac_flag(first, subject_ref=subject), at_least=5)
    loops.clock.advance(dt.timedelta(days=335))  # eleven months on
    second = unique("MARAC")
    repeat = loops.hub.publish(
        COORDINATOR,
        MARAC_RAISED,
        marac_flag(second, subject_ref=subject, referral_reason="dash", dash_score=6),
        key=second,
    )
    first_records = loops.hub.wait_records(repeat)
    assert AuditDecision.REJECTED not in {r.decision for r in first_records}, first_records[
        0
    ].reason
    loops.hub.wait_records(repeat, at_least=5)
    assert set(REDDITCH) <= loops.delivered(repeat)  # accepted, not refused for its score
    assert (second, "repeat_referral") in loops.sweep()
    # after the window it is a new referral: the same low score is refused
    loops.clock.advance(dt.timedelta(days=370))
    third = unique("MARAC")
    refused = loops.hub.publish(
        COORDINATOR,
        MARAC_RAISED,
        marac_flag(third, subject_ref=subject, referral_reason="dash", dash_score=6),
        key=third,
    )
    records = loops.hub.wait_records(refused)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "needs a score of 14 or more" in records[0].reason
