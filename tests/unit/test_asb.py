"""ASB Case Review: working days, the local threshold, stages, deadlines and the register."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from hub.policies.model import AsbThreshold, AsbTimescales
from hub.workflows.asb.cases import Action, Case, Deadline, deadlines, stage_after
from hub.workflows.asb.days import add_working_days, is_working_day, working_days_between
from hub.workflows.asb.register import AsbRegister
from hub.workflows.asb.threshold import Complaint, assess

D = dt.date


# --- working days -----------------------------------------------------------------------------


def test_easter_bank_holidays_are_skipped() -> None:
    # received Wednesday 1 April 2026: Good Friday (3rd) and Easter Monday (6th) are not
    # working days, so 10 working days end on Friday 17 April, not Wednesday 15th
    assert add_working_days(D(2026, 4, 1), 10) == D(2026, 4, 17)
    assert not is_working_day(D(2026, 4, 3))
    assert not is_working_day(D(2026, 4, 6))
    assert is_working_day(D(2026, 4, 7))


def test_weekends_and_substitute_days_are_skipped() -> None:
    assert add_working_days(D(2026, 6, 5), 1) == D(2026, 6, 8)  # Friday -> Monday
    # Boxing Day 2026 is a Saturday: its substitute, Monday 28 December, is a bank holiday
    assert not is_working_day(D(2026, 12, 28))
    assert add_working_days(D(2026, 12, 24), 1) == D(2026, 12, 29)
    # the late summer bank holiday (England and Wales; Scotland's is a different day)
    assert not is_working_day(D(2026, 8, 31))
    assert is_working_day(D(2026, 8, 3))  # Scotland's summer bank holiday: a working day here


def test_working_days_between_counts_after_start_up_to_end() -> None:
    assert working_days_between(D(2026, 4, 1), D(2026, 4, 17)) == 10
    assert working_days_between(D(2026, 4, 17), D(2026, 4, 1)) == 0
    assert add_working_days(D(2026, 4, 1), 0) == D(2026, 4, 1)
    with pytest.raises(ValueError, match="expected 0 or more"):
        add_working_days(D(2026, 4, 1), -1)


# --- the threshold ----------------------------------------------------------------------------

POLICY = AsbThreshold()  # three in six months reported within a month, or five complainants
RECEIVED = D(2026, 4, 1)


def complaint(
    ref: str, reported: dt.date, incident: dt.date, who: str = "C1", body: str = "police"
) -> Complaint:
    return Complaint(
        body=body, reference=ref, reported_on=reported, incident_on=incident, complainant=who
    )


def test_three_complaints_each_reported_within_a_month_meet_it() -> None:
    result = assess(
        [
            complaint("A", D(2026, 1, 10), D(2026, 1, 9)),
            complaint("B", D(2026, 2, 10), D(2026, 2, 1), body="council"),
            complaint("C", D(2026, 3, 10), D(2026, 2, 20)),
        ],
        POLICY,
        received_on=RECEIVED,
    )
    assert result.met
    assert result.met_by == "complaints"
    assert len(result.qualifying) == 3
    assert "threshold met: 3 qualifying complaints" in result.reasons[-1]


def test_a_late_report_and_an_old_complaint_do_not_count() -> None:
    result = assess(
        [
            complaint("A", D(2026, 1, 10), D(2026, 1, 9)),
            complaint("B", D(2026, 3, 20), D(2026, 1, 5)),  # reported 2.5 months after
            complaint("OLD", D(2025, 9, 1), D(2025, 8, 30)),  # before the six months
            complaint("C", D(2026, 3, 10), D(2026, 3, 1)),
        ],
        POLICY,
        received_on=RECEIVED,
    )
    assert not result.met
    assert result.met_by is None
    assert [c.reference for c in result.qualifying] == ["A", "C"]
    text = "\n".join(result.reasons)
    assert "police B reported 2026-03-20, incident 2026-01-05: does not qualify" in text
    assert "police OLD reported 2025-09-01: outside the P6M" in text
    assert "threshold not met: 2 qualifying complaints" in text
    assert "nor 5 different complainants (found 1)" in text


def test_five_different_complainants_meet_it_though_reports_were_late() -> None:
    late = [
        complaint(f"R{i}", D(2026, 3, 1 + i), D(2025, 12, 1), who=f"P{i}", body=f"b{i % 2}")
        for i in range(5)
    ]
    result = assess(late, POLICY, received_on=RECEIVED)
    assert result.met
    assert result.met_by == "complainants"
    assert result.complainants == 5
    assert not result.qualifying
    # four are not enough, and a complaint answered twice by one body counts once
    assert not assess([*late[:4], late[0]], POLICY, received_on=RECEIVED).met


def test_the_threshold_is_protocol_data() -> None:
    strict = AsbThreshold(complaints=4, distinct_complainants=None)
    three = [complaint(x, D(2026, 3, 1), D(2026, 2, 27)) for x in "ABC"]
    assert assess(three, POLICY, received_on=RECEIVED).met
    result = assess(three, strict, received_on=RECEIVED)
    assert not result.met
    assert "nor" not in result.reasons[-1]


# --- stages and deadlines ---------------------------------------------------------------------

DAYS = AsbTimescales()
BODIES = ("police", "council")


def case(**changes: object) -> Case:
    base = Case(
        case_ref="ASB-1",
        applicant_ref="APP-1",
        applicant_kind="resident",
        district="bromsgrove",
        received_on=RECEIVED,
        stage="received",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def by_kind(c: Case) -> dict[tuple[str, str], Deadline]:
    return {
        (d.kind, d.party): d for d in deadlines(c, bodies=BODIES, coordinator="coord", days=DAYS)
    }


def test_deadlines_count_working_days_from_the_application() -> None:
    got = by_kind(case())
    assert got[("acknowledge", "coord")].due_on == D(2026, 4, 17)
    assert got[("answer", "police")].due_on == D(2026, 4, 17)
    assert got[("decision", "coord")].due_on == D(2026, 4, 24)
    assert ("meeting", "coord") not in got  # only once the threshold is met
    met = by_kind(case(decided_on=D(2026, 4, 20), threshold_met=True))
    meeting = met[("meeting", "coord")]
    assert meeting.due_on == D(2026, 5, 1)
    assert not meeting.overdue(D(2026, 5, 1))
    assert meeting.overdue(D(2026, 5, 2))


def test_an_answer_after_its_day_is_late_not_overdue() -> None:
    got = by_kind(case(answers={"police": D(2026, 4, 20)}))
    police = got[("answer", "police")]
    assert police.late
    assert not police.overdue(D(2026, 5, 1))
    assert got[("answer", "council")].overdue(D(2026, 4, 18))


def test_stages_follow_what_happened_and_an_appeal_reopens() -> None:
    assert stage_after(case()) == "received"
    assert stage_after(case(decided_on=D(2026, 4, 20), threshold_met=False)) == "closed"
    met = case(decided_on=D(2026, 4, 20), threshold_met=True)
    assert stage_after(met) == "review"
    action = Action("ACT-1", "police", "patrols", D(2026, 6, 1), D(2026, 4, 28))
    done = replace(met, outcome_on=D(2026, 4, 28), actions=(action,))
    assert stage_after(done) == "actions"
    closed = case(
        **{
            **done.__dict__,
            "actions": (Action(**{**action.__dict__, "completed_on": D(2026, 5, 5)}),),
        }
    )
    assert stage_after(closed) == "closed"
    appealed = replace(closed, appealed_on=D(2026, 5, 11), appeal_ref="AP-1")
    assert stage_after(appealed) == "appeal"
    got = by_kind(appealed)
    assert got[("appeal_review", "coord")].due_on == add_working_days(D(2026, 5, 11), 20)
    # an appeal against a threshold not met reopens it too
    assert (
        stage_after(
            case(decided_on=D(2026, 4, 20), threshold_met=False, appealed_on=D(2026, 4, 22))
        )
        == "appeal"
    )


# --- the register -----------------------------------------------------------------------------


def test_register_follows_a_case_and_ignores_repeats(tmp_path: Path) -> None:
    with AsbRegister(tmp_path / "w.sqlite3") as reg:
        for _ in range(2):  # a reprocessed event changes nothing
            reg.open_case(
                event_id="e1",
                case_ref="ASB-1",
                applicant_ref="APP-1",
                applicant_kind="resident",
                district="bromsgrove",
                received_on=RECEIVED,
            )
        reg.answer(
            event_id="e2",
            case_ref="ASB-1",
            body="police",
            answered_on=D(2026, 4, 8),
            complaints=[complaint("A", D(2026, 3, 1), D(2026, 2, 27))],
        )
        reg.record(
            event_id="e3",
            case_ref="ASB-1",
            decided_on=D(2026, 4, 9),
            threshold_met=True,
            met_by="complaints",
        )
        got = reg.case("ASB-1")
        assert got is not None
        assert got.stage == "review"
        assert got.answers == {"police": D(2026, 4, 8)}
        assert [c.reference for c in reg.complaints("ASB-1")] == ["A"]
        action = Action("ACT-1", "police", "patrols", D(2026, 6, 1), D(2026, 4, 28))
        reg.outcome(
            event_id="e4",
            case_ref="ASB-1",
            outcome="actions_recommended",
            outcome_on=D(2026, 4, 28),
            meeting_on=D(2026, 4, 27),
            appeal=False,
            actions=[action],
        )
        assert reg.case("ASB-1").stage == "actions"  # type: ignore[union-attr]
        reg.action_update(
            event_id="e5",
            case_ref="ASB-1",
            action_ref="ACT-1",
            status="completed",
            on=D(2026, 5, 5),
        )
        assert reg.case("ASB-1").stage == "closed"  # type: ignore[union-attr]
        reg.appeal(event_id="e6", case_ref="ASB-1", appeal_ref="AP-1", lodged_on=D(2026, 5, 11))
        reg.appeal(event_id="e6", case_ref="ASB-1", appeal_ref="AP-1", lodged_on=D(2026, 5, 11))
        reopened = reg.case("ASB-1")
        assert reopened is not None
        assert (reopened.stage, reopened.reopened) == ("appeal", 1)
        assert [c.case_ref for c in reg.cases(include_closed=False)] == ["ASB-1"]
