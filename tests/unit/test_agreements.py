"""Information sharing agreements: rules lapse after their agreement's review date.

ICO Data Sharing Code and the Information Sharing Gateway: an agreement past its review date
stops being relied on until it is reviewed. The engine suspends every rule naming it (the
parties those rules alone served are withheld, naming the agreement) and ``hub policy check``
warns 30 days ahead.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.models import Decision
from hub.policies.check import check_protocol
from hub.policies.engine import evaluate
from hub.policies.loader import load_protocol
from hub.policies.model import Agreement
from hub.schemas.codec import SchemaRegistry
from hub.settings import default_protocol_path
from tests.unit.test_policy_check import Mutant
from tests.unit.test_policy_engine import (
    BAN,
    LICENSING,
    MARAC,
    POLICE,
    RAISED,
    REDDITCH_DEPTS,
    RETAIL,
    SUN,
    ban,
    marac_flag,
)


def _agreement(agreement_id: str) -> Agreement:
    found = load_protocol(default_protocol_path()).agreement(agreement_id)
    if found is None:
        raise LookupError(f"the reference protocol declares no agreement {agreement_id}")
    return found


REF = load_protocol(default_protocol_path())
REGISTRY = SchemaRegistry()
MARAC_ISA = _agreement("NW-CSP-ISA-MARAC-2025")
PUBWATCH_ISA = _agreement("REDDITCH-PUBWATCH-DSA-2025")
LINK_ISA = _agreement("REDDITCH-PUBWATCH-BCRP-LINK-2025")


def decide(event_type: str, publisher: str, data: dict[str, object], today: dt.date) -> Decision:
    return evaluate(
        REF, event_type=event_type, event_id="e-1", publisher=publisher, data=data, today=today
    )


def delivered(decision: Decision) -> set[str]:
    return {r.party for r in decision.deliveries}


def test_every_rule_of_the_reference_protocol_names_a_declared_agreement() -> None:
    declared = {a.id for a in REF.agreements}
    assert declared
    # but the hub's own alerts about the agreements, which must not lapse with them
    assert {r.id for r in REF.rules if r.agreement is None} == {"agreement-alerts-to-ig"}
    assert {r.agreement for r in REF.rules if r.agreement is not None} <= declared


def test_on_the_review_date_the_rule_still_applies() -> None:
    decision = decide(RAISED, MARAC, marac_flag(), MARAC_ISA.review_date)
    assert decision.suspended_agreements == ()
    assert {POLICE} | REDDITCH_DEPTS <= delivered(decision)


def test_the_day_after_the_review_date_every_rule_of_the_agreement_is_suspended() -> None:
    today = MARAC_ISA.review_date + dt.timedelta(days=1)
    decision = decide(RAISED, MARAC, marac_flag(), today)
    assert delivered(decision) == set()
    assert decision.suspended_agreements == (MARAC_ISA.id,)
    withheld = {r.party: r for r in decision.recipients}
    assert {POLICE} | REDDITCH_DEPTS <= set(withheld)
    for party in {POLICE} | REDDITCH_DEPTS:
        outcome = withheld[party]
        assert outcome.outcome == "withhold"
        assert MARAC_ISA.id in outcome.reason
        assert str(MARAC_ISA.review_date) in outcome.reason
        assert outcome.rule_id in {r.id for r in REF.rules if r.agreement == MARAC_ISA.id}
        assert outcome.fields == ()


def test_rules_under_other_agreements_keep_working() -> None:
    # the linked retail agreement (switched on here) lapses; the scheme's own does not
    assert LINK_ISA.review_date == PUBWATCH_ISA.review_date  # the mutation below separates them
    protocol = REF.model_copy(
        update={
            "agreements": tuple(
                a.model_copy(update={"review_date": dt.date(2026, 1, 1), "in_force": True})
                if a.id == LINK_ISA.id
                else a
                for a in REF.agreements
            )
        }
    )

    def decide_ban(incident: str) -> Decision:
        return evaluate(
            protocol,
            event_type=BAN,
            event_id=f"e-{incident}",
            publisher="pubwatch.redditch.crown-inn",
            data=ban(incident_type=incident),
            today=dt.date(2026, 11, 23),
        )

    # a theft ban travels to retail only under the linked-scheme agreement
    theft = decide_ban("theft")
    assert {LICENSING, SUN} <= delivered(theft)  # under the scheme's own agreement
    assert RETAIL not in delivered(theft)
    for party in (RETAIL,):
        outcome = next(r for r in theft.recipients if r.party == party)
        assert LINK_ISA.id in outcome.reason
    assert theft.suspended_agreements == (LINK_ISA.id,)
    # a night-time ban relies on the scheme's own agreement only: unaffected
    violence = decide_ban("violence")
    assert {SUN, LICENSING} <= delivered(violence)
    assert violence.suspended_agreements == ()


def test_a_prohibition_still_wins_over_a_suspended_rule() -> None:
    today = MARAC_ISA.review_date + dt.timedelta(days=1)
    decision = decide(RAISED, MARAC, marac_flag(), today)
    for party in ("pubwatch.redditch.crown-inn", RETAIL):
        outcome = next((r for r in decision.recipients if r.party == party), None)
        assert outcome is None or "suspended" not in outcome.reason


def test_without_a_date_nothing_is_suspended() -> None:
    decision = evaluate(
        REF, event_type=RAISED, event_id="e-3", publisher=MARAC, data=marac_flag(), today=None
    )
    assert POLICE in delivered(decision)


@pytest.fixture
def mutant(tmp_path: Path) -> Mutant:
    return Mutant(tmp_path)


def _codes(mutant: Mutant, today: dt.date, agreement: str) -> list[tuple[str, str]]:
    mutant.path.write_text(mutant.text)
    report = check_protocol(mutant.path, REGISTRY, today=today)
    assert report.ok, report.lines()
    return [(f.code, f.location) for f in report.warnings if agreement in f.message]


def test_check_warns_thirty_days_before_an_agreement_lapses(mutant: Mutant) -> None:
    review = MARAC_ISA.review_date
    line = mutant.where(f"review_date: {review}")
    assert _codes(mutant, review - dt.timedelta(days=31), MARAC_ISA.id) == []
    due = [("agreement-review-due", line)]
    assert _codes(mutant, review - dt.timedelta(days=30), MARAC_ISA.id) == due
    assert _codes(mutant, review, MARAC_ISA.id) == due


def test_check_warns_that_rules_are_suspended(mutant: Mutant) -> None:
    review = MARAC_ISA.review_date
    mutant.path.write_text(mutant.text)
    report = check_protocol(mutant.path, REGISTRY, today=review + dt.timedelta(days=1))
    suspended = [
        f for f in report.warnings if f.code == "agreement-suspended" and MARAC_ISA.id in f.message
    ]
    assert [f.location for f in suspended] == [mutant.where(f"review_date: {review}")]
    for rule in (r.id for r in REF.rules if r.agreement == MARAC_ISA.id):
        assert rule in suspended[0].message


def test_check_refuses_a_rule_naming_an_undeclared_agreement(mutant: Mutant) -> None:
    mutant.replace(
        "agreement: NW-CSP-ISA-SOCJAG-2025", "agreement: NW-CSP-ISA-SOCJAG-2024", after="rules:"
    )
    mutant.path.write_text(mutant.text)
    report = check_protocol(mutant.path, REGISTRY, today=dt.date(2026, 11, 23))
    assert [(f.code, f.location) for f in report.errors] == [
        ("unknown-agreement", mutant.where("agreement: NW-CSP-ISA-SOCJAG-2024"))
    ]
    assert "did you mean 'NW-CSP-ISA-SOCJAG-2025'" in report.errors[0].message


def test_check_refuses_duplicate_agreement_ids(mutant: Mutant) -> None:
    mutant.replace("  - id: NW-CSP-ISA-SOCJAG-2025\n", "  - id: NW-CSP-ISA-MARAC-2025\n")
    mutant.path.write_text(mutant.text)
    report = check_protocol(mutant.path, REGISTRY, today=dt.date(2026, 11, 23))
    second = mutant.where(
        "  - id: NW-CSP-ISA-MARAC-2025\n", after="title: North Worcestershire MARAC"
    )
    assert ("duplicate-id", second) in {(f.code, f.location) for f in report.errors}


@pytest.mark.parametrize("field", ["ack_limit", "review_grace", "repeat_window"])
def test_marac_periods_must_be_iso_durations(mutant: Mutant, field: str) -> None:
    line = next(ln for ln in mutant.text.splitlines() if ln.strip().startswith(f"{field}:"))
    mutant.replace(line, f"  {field}: 2 weeks")
    mutant.path.write_text(mutant.text)
    report = check_protocol(mutant.path, REGISTRY, today=dt.date(2026, 11, 23))
    assert not report.ok
    assert any("ISO 8601 duration" in f.message for f in report.errors), report.lines()
