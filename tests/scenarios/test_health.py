"""Scenario: health's urgent-care path through MARAC, the NHS CP-IS way (issue 17).

A flag reaches the urgent-care settings and the ICB as a flag-only notice and scheduled care
not at all; when the emergency department views it, the coordinator is told which setting
viewed it and when, and the notice is audited naming its rule and legal gateway. Through the
commands and SDK the parties use, on the embedded broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.client import HubClient
from hub.models import AuditDecision, Delivery
from tests.conftest import unique
from tests.factories import (
    MARAC_ACCESS,
    MARAC_RAISED,
    MARAC_WITHDRAWN,
    marac_access,
    marac_flag,
    marac_withdrawn,
)
from tests.scenarios.harness import TimedHub, timed_hub

pytestmark = pytest.mark.integration

COORDINATOR = "marac.north-worcs"
ED = "wah-nhs.alexandra-ed"
MIU = "wah-nhs.kidderminster-miu"
URGENT_CARE = {"hw-icb", ED, MIU, "wah-nhs.safeguarding"}
OUTPATIENTS = "wah-nhs.outpatients"
S115 = "Crime and Disorder Act 1998 s115"
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
EXAMPLE = Path(__file__).parents[2] / "examples" / "events" / "marac-flag-raised-redditch.json"


@pytest.fixture(scope="module")
def health(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimedHub]:
    with timed_hub(tmp_path_factory.mktemp("health"), START) as (running, clock):
        yield TimedHub(running, clock)


def _audit(health: TimedHub, event_id: str) -> str:
    result = health.cli(
        "audit", "query", "--event", event_id, "--operator", "A. Coordinator",
        "--purpose", "marac", "--reason", "Who was told the flag was viewed",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_policy_explain_shows_the_health_rule_and_scheduled_care_gets_nothing(
    health: TimedHub,
) -> None:
    for party in ("hw-icb", ED):
        result = health.cli("policy", "explain", "--event", str(EXAMPLE), "--as", party)
        assert result.returncode == 0, result.stderr
        assert "outcome: deliver" in result.stdout
        assert "rule marac-flag-health-urgent-care" in result.stdout
        assert f"gateway: {S115}" in result.stdout
        assert "marac_date" in result.stdout.split("removed:")[0]
    result = health.cli("policy", "explain", "--event", str(EXAMPLE), "--as", OUTPATIENTS)
    assert result.returncode == 0, result.stderr
    assert "receives nothing" in result.stdout
    assert "default deny" in result.stdout


def test_a_view_in_urgent_care_is_notified_to_the_coordinator_and_audited(
    health: TimedHub,
) -> None:
    case = unique("MARAC")
    raised = health.hub.publish(COORDINATOR, MARAC_RAISED, marac_flag(case), key=case)
    records = health.hub.wait_records(raised, at_least=9)
    delivered = {r.recipient: r for r in records if r.decision == AuditDecision.DELIVERED}
    assert URGENT_CARE <= set(delivered)
    assert OUTPATIENTS not in {r.recipient for r in records}  # scheduled care: not even named
    assert delivered[ED].rule == "marac-flag-health-urgent-care"
    assert delivered[ED].gateway == S115
    flag = health.received(ED, raised)
    assert flag.data["marac_date"] == "2026-11-19"
    assert not {"notes", "dash_score", "referral_reason", "rationale"} & set(flag.data)

    viewed_at = dt.datetime(2026, 11, 23, 23, 41, 5, tzinfo=dt.UTC)

    async def view() -> str:
        async with HubClient(ED, bootstrap=health.hub.bootstrap, keys=health.hub.keys) as client:
            return await client.record_view(
                flag,
                setting="Emergency department, Alexandra Hospital, Redditch",
                viewed_by="ED triage nurse",
                viewed_at=viewed_at,
            )

    notice = asyncio.run(view())
    told: Delivery = health.received(COORDINATOR, notice)
    assert told.source == f"/parties/{ED}"  # which setting
    assert told.data["setting"] == "Emergency department, Alexandra Hospital, Redditch"
    assert told.data["viewed_by"] == "ED triage nurse"
    assert dt.datetime.fromisoformat(told.data["viewed_at"]) == viewed_at  # when
    assert told.data["viewed_event_id"] == raised
    records = health.hub.wait_records(notice)
    assert [(r.decision, r.recipient) for r in records] == [
        (AuditDecision.DELIVERED, COORDINATOR)
    ]  # the coordinator alone, and the notice audited
    assert records[0].rule == "marac-access-notification"
    assert records[0].publisher == ED
    text = _audit(health, notice)
    assert f"gateway: {S115}" in text
    assert "marac-access-notification" in text

    status = health.cli("marac", "status", "--case", case, "--json")
    assert status.returncode in (0, 1), status.stderr
    (report,) = json.loads(status.stdout)["flags"]
    assert [v["party"] for v in report["viewed"]] == [ED]
    assert f"viewed by {ED}" in health.cli("marac", "status", "--case", case).stdout

    # the withdrawal reaches every setting that holds the flag (UK GDPR Art 19)
    withdrawn = health.hub.publish(COORDINATOR, MARAC_WITHDRAWN, marac_withdrawn(case), key=case)
    records = health.hub.wait_records(withdrawn, at_least=6)
    assert URGENT_CARE <= {r.recipient for r in records if r.decision == AuditDecision.DELIVERED}


def test_a_view_of_a_flag_not_held_or_from_scheduled_care_is_refused(health: TimedHub) -> None:
    case = unique("MARAC")
    never = health.hub.publish(MIU, MARAC_ACCESS, marac_access(case), key=case)
    records = health.hub.wait_records(never)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "never delivered" in records[0].reason
    scheduled = health.hub.publish(OUTPATIENTS, MARAC_ACCESS, marac_access(case), key=case)
    records = health.hub.wait_records(scheduled)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert OUTPATIENTS in records[0].reason  # it holds no flag, nor may it send notices
