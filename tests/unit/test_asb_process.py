"""The ASB Case Review process: its refusals, its effects and its sweep's plan, without a hub."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from hub.models import EventAttributes, InboundEvent, QuarantineReason
from hub.policies.loader import load_protocol
from hub.processes.asb import PROCESS, BodyAnswered, CaseOpened, effects_for
from hub.processes.base import EventContext, Refusal, Stores, apply_effects
from hub.workflows.asb.cases import deadlines
from hub.workflows.asb.register import AsbRegister
from hub.workflows.asb.sweep import bodies_for, plan_sweep
from tests import factories

REF = load_protocol(
    Path(__file__).resolve().parents[2] / "hub" / "policies" / "north-worcestershire.yaml"
)
NOW = dt.datetime(2026, 4, 8, 9, 0, tzinfo=dt.UTC)
CASE = "ASB-1"


def ctx(
    event_type: str, party: str, data: dict[str, Any], *, now: dt.datetime = NOW, n: int = 0
) -> EventContext:
    event = InboundEvent(
        attributes=EventAttributes(
            id=f"e-{event_type.rsplit('.', 2)[-2]}-{party}-{n}",
            source=f"/parties/{party}",
            type=event_type,
            time=now,
        ),
        key=CASE,
        data=json.loads(json.dumps(data)),
    )
    return EventContext(
        event=event, case=CASE, now=now, protocol=REF, _holders=set, _subject=lambda: None
    )


def route(stores: Stores, event_type: str, party: str, data: dict[str, Any], **kw: Any) -> None:
    """What the router does for a process: check, then apply the effects of record."""
    context = ctx(event_type, party, data, **kw)
    PROCESS.check(context, stores)
    apply_effects(effects_for(context), stores)


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return Stores([AsbRegister(tmp_path / "workflows.sqlite3")])


def test_effects_are_data_and_need_no_files() -> None:
    application = ctx(
        factories.ASB_APPLICATION, "nwcsp.asb-case-review", factories.asb_application(CASE)
    )
    assert effects_for(application) == [
        CaseOpened(
            application.id, CASE, f"APP-{CASE}", "resident", "bromsgrove", dt.date(2026, 4, 1)
        )
    ]
    answer = ctx(factories.ASB_COMPLAINTS, "rp.bdht", factories.asb_complaints(CASE))
    assert effects_for(answer) == [BodyAnswered(answer.id, CASE, "rp.bdht", NOW.date(), ())]
    assert PROCESS.check(application, Stores()) is None  # without its register: nothing read


def refusal(stores: Stores, event_type: str, party: str, data: dict[str, Any]) -> str:
    with pytest.raises(Refusal) as caught:
        PROCESS.check(ctx(event_type, party, data, n=9), stores)
    assert caught.value.reason is QuarantineReason.POLICY_REJECTED
    return caught.value.detail


def test_events_that_do_not_fit_the_case_are_refused_with_why(stores: Stores) -> None:
    coordinator = "nwcsp.asb-case-review"
    assert "has no application" in refusal(
        stores, factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE)
    )
    route(stores, factories.ASB_APPLICATION, coordinator, factories.asb_application(CASE))
    assert "already has an application" in refusal(
        stores, factories.ASB_APPLICATION, coordinator, factories.asb_application(CASE)
    )
    assert "district of case ASB-1: expected bromsgrove, got redditch" in refusal(
        stores,
        factories.ASB_COMPLAINTS,
        "west-mercia-police",
        factories.asb_complaints(CASE, district="redditch"),
    )
    assert "relevant body for wyre_forest" in refusal(
        stores, factories.ASB_COMPLAINTS, "rp.community-housing", factories.asb_complaints(CASE)
    )
    assert "expected the threshold met first, got no threshold decision yet" in refusal(
        stores, factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE)
    )
    assert "expected a report on or after the incident (2026-03-02), got 2026-03-01" in refusal(
        stores,
        factories.ASB_COMPLAINTS,
        "west-mercia-police",
        factories.asb_complaints(CASE, [("R-9", "2026-03-01", "2026-03-02", "CP-1")]),
    )
    assert "expected a threshold decision to appeal against" in refusal(
        stores, factories.ASB_APPEAL, coordinator, factories.asb_appeal(CASE)
    )


def test_recommendations_go_to_the_cases_relevant_bodies_only(stores: Stores) -> None:
    coordinator = "nwcsp.asb-case-review"
    route(stores, factories.ASB_APPLICATION, coordinator, factories.asb_application(CASE))
    threshold = factories.asb_threshold(CASE, met=True)
    route(stores, factories.ASB_THRESHOLD, "hub", threshold)
    elsewhere = factories.asb_outcome(CASE)
    elsewhere["recommendations"][0]["body"] = "rp.community-housing"  # Wyre Forest's provider
    assert "expected one of the case's relevant bodies" in refusal(
        stores, factories.ASB_OUTCOME, coordinator, elsewhere
    )
    PROCESS.check(ctx(factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE)), stores)


def test_the_sweep_decides_once_every_body_answered_then_escalates(stores: Stores) -> None:
    register = stores.get(AsbRegister)
    assert register is not None
    route(
        stores, factories.ASB_APPLICATION, "nwcsp.asb-case-review", factories.asb_application(CASE)
    )
    bodies = bodies_for(REF, "bromsgrove")
    assert bodies == ["bromsgrove-dc.community-safety", "hw-icb", "rp.bdht", "west-mercia-police"]
    complaints = [("R-1", "2026-03-01", "2026-02-27", "CP-1")]
    for body in bodies[:-1]:
        route(stores, factories.ASB_COMPLAINTS, body, factories.asb_complaints(CASE, complaints))
    assert plan_sweep(register=register, protocol=REF, now=NOW) == []  # police not in yet
    late = dt.datetime(2026, 4, 20, 9, tzinfo=dt.UTC)
    alerts = {a.kind: a for a in plan_sweep(register=register, protocol=REF, now=late)}
    assert set(alerts) == {"acknowledge_overdue", "answer_overdue"}  # nobody acknowledged either
    assert alerts["answer_overdue"].data["parties"] == ["west-mercia-police"]
    assert alerts["acknowledge_overdue"].data["parties"] == []  # the coordinator's own duty
    for alert in alerts.values():
        register.mark_alert(alert.event_id, alert.kind, CASE, late)
    assert plan_sweep(register=register, protocol=REF, now=late) == []
    route(
        stores,
        factories.ASB_COMPLAINTS,
        "west-mercia-police",
        factories.asb_complaints(CASE),
        now=late,
    )
    (decision,) = plan_sweep(register=register, protocol=REF, now=late)
    # one complaint answered by three bodies under one reference each: three, all qualifying
    assert decision.data["met"] is True
    assert decision.data["qualifying_complaints"] == 3
    assert decision.data["bodies_answered"] == sorted(bodies)


def test_a_bodys_overdue_actions_are_escalated_to_it(stores: Stores) -> None:
    register = stores.get(AsbRegister)
    assert register is not None
    coordinator = "nwcsp.asb-case-review"
    route(stores, factories.ASB_APPLICATION, coordinator, factories.asb_application(CASE))
    acknowledged = {"case_ref": CASE, "district": "bromsgrove", "acknowledged_on": "2026-04-02"}
    route(stores, factories.ASB_ACKNOWLEDGED, coordinator, acknowledged)
    for body in bodies_for(REF, "bromsgrove"):
        route(stores, factories.ASB_COMPLAINTS, body, factories.asb_complaints(CASE))
    route(stores, factories.ASB_THRESHOLD, "hub", factories.asb_threshold(CASE, met=True))
    route(stores, factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE))
    # the outcome of 28 April: acknowledge within 5 working days (the May bank holiday
    # skipped: 6 May), complete by 30 June
    on_time = dt.datetime(2026, 5, 6, 9, tzinfo=dt.UTC)
    assert plan_sweep(register=register, protocol=REF, now=on_time) == []
    later = dt.datetime(2026, 7, 1, 9, tzinfo=dt.UTC)
    alerts = {a.kind: a.data for a in plan_sweep(register=register, protocol=REF, now=later)}
    assert set(alerts) == {"action_acknowledge_overdue", "action_complete_overdue"}
    assert all(a["parties"] == ["west-mercia-police"] for a in alerts.values())
    assert "complete action ACT-1 by 2026-06-30" in alerts["action_complete_overdue"]["detail"]
    route(stores, factories.ASB_ACTION, "west-mercia-police",
          factories.asb_action(CASE, "completed", on="2026-07-01"))  # fmt: skip
    assert plan_sweep(register=register, protocol=REF, now=later) == []
    case = register.case(CASE)
    assert case is not None
    assert case.stage == "closed"


def test_the_running_hub_runs_the_asb_sweep_on_its_timer() -> None:
    from hub.agents.timers import sweeps_for
    from hub.processes import default_registry

    sweeps = {s.name: s for s in sweeps_for(REF, default_registry())}
    assert "asb_sweep" in sweeps
    assert "asb" in {p.name for p in default_registry()}
    no_asb = REF.model_copy(update={"asb": None})
    assert "asb_sweep" not in {s.name for s in sweeps_for(no_asb, default_registry())}


def test_an_appeal_upheld_against_a_threshold_not_met_opens_the_review(stores: Stores) -> None:
    register = stores.get(AsbRegister)
    assert register is not None
    coordinator = "nwcsp.asb-case-review"
    route(stores, factories.ASB_APPLICATION, coordinator, factories.asb_application(CASE))
    route(stores, factories.ASB_THRESHOLD, "hub", factories.asb_threshold(CASE, met=False))
    assert "expected the threshold met first, got not met" in refusal(
        stores, factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE)
    )
    appeal = factories.asb_appeal(CASE, against="threshold_decision", lodged_on="2026-04-22")
    route(stores, factories.ASB_APPEAL, coordinator, appeal)
    upheld = factories.asb_outcome(
        CASE, outcome="appeal_upheld", appeal_ref=f"AP-{CASE}", decided_on="2026-05-06",
        meeting_on=None, recommendations=[],
    )  # fmt: skip
    route(stores, factories.ASB_OUTCOME, coordinator, upheld)
    case = register.case(CASE)
    assert case is not None
    assert (case.stage, case.threshold_met, case.met_by) == ("review", True, "appeal")
    policy = REF.asb
    assert policy is not None
    meeting = next(
        d
        for d in deadlines(case, bodies=(), coordinator=coordinator, days=policy.working_days)
        if d.kind == "meeting"
    )
    assert meeting.due_on == dt.date(2026, 6, 4)  # 20 working days from 6 May, 25 May skipped
    # the review then goes ahead as any other
    PROCESS.check(ctx(factories.ASB_OUTCOME, coordinator, factories.asb_outcome(CASE)), stores)
