"""Health in the reference protocol, the NHS CP-IS way (issue 17): who receives what.

Urgent and unscheduled-care settings and the ICB's safeguarding team carry the flag-only
notice; scheduled care receives nothing; an access notice from an urgent-care setting reaches
the MARAC coordinator alone. The router-level check (only a holder may report a view) is in
``hub.workflows.health`` and tested here as a pure function, and end to end in
tests/scenarios/test_health.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.models import Decision
from hub.policies.engine import evaluate, minimise
from hub.policies.loader import load_protocol
from hub.settings import default_protocol_path
from hub.workflows.health import check_access
from tests.factories import MARAC_ACCESS, MARAC_RAISED, MARAC_UPDATED, marac_access, marac_flag

PROTOCOL = load_protocol(default_protocol_path())
URGENT_CARE = {
    "hw-icb",
    "wah-nhs.alexandra-ed",
    "wah-nhs.kidderminster-miu",
    "wah-nhs.safeguarding",
}
SCHEDULED_CARE = "wah-nhs.outpatients"
COORDINATOR = "marac.north-worcs"
FLAG_ONLY = {
    "case_ref", "subject_ref", "markers", "risk_level", "address", "marac_date", "review_date",
    "contact",
}  # fmt: skip


def decide(event_type: str, publisher: str, data: dict[str, Any]) -> Decision:
    return evaluate(PROTOCOL, event_id="e-1", event_type=event_type, publisher=publisher, data=data)


@pytest.mark.parametrize("event_type", [MARAC_RAISED, MARAC_UPDATED])
@pytest.mark.parametrize("district", ["redditch", "wyre_forest", "worcester"])
def test_urgent_care_holds_the_flag_only_notice_wherever_the_victim_lives(
    event_type: str, district: str
) -> None:
    data = marac_flag("MARAC-1", district=district, change_reason="risk up")
    got = {r.party: r for r in decide(event_type, COORDINATOR, data).deliveries}
    assert URGENT_CARE <= set(got)
    for party in URGENT_CARE:
        assert got[party].rule_id == "marac-flag-health-urgent-care"
        assert got[party].gateway == "Crime and Disorder Act 1998 s115"
        assert set(minimise(data, got[party].fields)) == FLAG_ONLY
    assert SCHEDULED_CARE not in got  # scheduled care: nothing, no rule names it


def test_an_access_notice_reaches_the_coordinator_alone() -> None:
    decision = decide(MARAC_ACCESS, "wah-nhs.alexandra-ed", marac_access("MARAC-1"))
    assert not decision.rejected
    got = {r.party: r for r in decision.deliveries}
    assert set(got) == {COORDINATOR}
    assert got[COORDINATOR].rule_id == "marac-access-notification"


def test_scheduled_care_may_not_send_access_notices() -> None:
    decision = decide(MARAC_ACCESS, SCHEDULED_CARE, marac_access("MARAC-1"))
    assert decision.rejected
    assert "may not publish" in (decision.reject_reason or "")


def test_only_a_holder_of_the_flag_may_report_viewing_it() -> None:
    assert check_access("wah-nhs.alexandra-ed", "MARAC-1", {"wah-nhs.alexandra-ed"}) is None
    refused = check_access("wah-nhs.kidderminster-miu", "MARAC-1", {"wah-nhs.alexandra-ed"})
    assert refused is not None
    assert "never delivered to wah-nhs.kidderminster-miu" in refused
