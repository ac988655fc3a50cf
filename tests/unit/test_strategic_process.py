"""The s17A process: its refusals, its effects, the register and the sweep's plan, no hub."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from hub.models import Decision, EventAttributes, InboundEvent, QuarantineReason
from hub.policies.loader import load_protocol
from hub.processes.base import EventContext, Refusal, Routed, Stores, apply_effects
from hub.processes.s17a import PROCESS, ReleaseRecorded, SubmissionKept
from hub.settings import default_protocol_path
from hub.strategic.dataset import build_dataset
from hub.strategic.register import Release, StrategicRegister
from hub.strategic.status import plan_alerts, submitter_states
from tests import factories

REF = load_protocol(default_protocol_path())
assert REF.strategic is not None
POLICY = REF.strategic
NOW = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def ctx(
    event_type: str, party: str, data: dict[str, Any], *, now: dt.datetime = NOW, n: int = 0
) -> EventContext:
    event = InboundEvent(
        attributes=EventAttributes(
            id=f"e-{party}-{n}", source=f"/parties/{party}", type=event_type, time=now
        ),
        key="S17A",
        data=json.loads(json.dumps(data)),
    )
    return EventContext(
        event=event, case=None, now=now, protocol=REF, _holders=set, _subject=lambda: None
    )


def routed(*parties: str) -> Routed:
    decision = Decision(event_id="e", event_type="t", publisher="p", protocol_hash="h")
    return Routed(decision=decision, delivered=frozenset(parties))


def refusal(event_type: str, party: str, data: dict[str, Any]) -> str:
    with pytest.raises(Refusal) as caught:
        PROCESS.check(ctx(event_type, party, data), Stores())
    assert caught.value.reason is QuarantineReason.POLICY_REJECTED
    return caught.value.detail


def test_a_submission_is_kept_as_an_effect_with_no_files() -> None:
    context = ctx(factories.STRATEGIC_SUBMISSION, "hwfrs", _fires({"B97": 7, "DY10": 2}))
    checked = PROCESS.check(context, Stores())
    assert checked is not None
    assert checked.marks == (
        "s17A counts for 2026Q3 (fire_deliberate_fires, 2 areas) kept by the hub",
    )
    assert PROCESS.record(context, routed("nwcsp.analysts"), None, Stores()) == [
        SubmissionKept(
            "hwfrs",
            "2026Q3",
            "fire_deliberate_fires",
            "hwfrs-2026Q3-fire-deliberate-fires",
            "e-hwfrs-0",
            NOW,
            (("B97", 7), ("DY10", 2)),
        )
    ]


def _fires(counts: dict[str, int], **overrides: Any) -> dict[str, Any]:
    return factories.strategic_submission(
        "hwfrs", category="fire_deliberate_fires", counts=counts, **overrides
    )


def test_submissions_that_do_not_fit_the_protocol_are_refused_with_why() -> None:
    sub = factories.STRATEGIC_SUBMISSION
    assert "submitter: expected the publisher hwfrs, got west-mercia-police" in refusal(
        sub, "hwfrs", factories.strategic_submission("west-mercia-police")
    )
    assert "category police_recorded_crime: expected one of hwfrs's categories" in refusal(
        sub, "hwfrs", factories.strategic_submission("hwfrs")
    )
    assert "not a responsible authority of strategic.submitters" in refusal(
        sub, "wrs", factories.strategic_submission("wrs", category="council_asb")
    )
    assert "period 2026Q4: expected an information period that has ended" in refusal(
        sub, "hwfrs", _fires({"B97": 1}, period="2026Q4")
    )
    twice = _fires({"B97": 1})
    twice["counts"].append({"area": "B97", "count": 2})
    assert "each area once, got B97 more than once" in refusal(sub, "hwfrs", twice)


def test_the_register_keeps_the_latest_submission_and_releases(tmp_path: Path) -> None:
    stores = Stores([StrategicRegister(tmp_path / "workflows.sqlite3")])
    first = ctx(factories.STRATEGIC_SUBMISSION, "hwfrs", _fires({"B97": 7}))
    later = ctx(
        factories.STRATEGIC_SUBMISSION,
        "hwfrs",
        _fires({"B97": 9}),
        now=NOW + dt.timedelta(days=1),
        n=1,
    )
    for context in (first, later, first):  # the correction wins; a repeat of the first not
        apply_effects(PROCESS.record(context, routed(), None, stores), stores)
    register = stores.get(StrategicRegister)
    assert register is not None
    [kept] = register.submissions("2026Q3")
    assert (kept.counts, kept.event_id) == ({"B97": 9}, "e-hwfrs-1")
    release = Release("S17A-2026Q3-x", "2026Q3", "0" * 64, "e-r", NOW.isoformat(), ())
    apply_effects([ReleaseRecorded(release, 5, ())], stores)
    routed_release = Release("S17A-2026Q3-x", "2026Q3", "0" * 64, "e-r", NOW.isoformat(), ("a",))
    apply_effects([ReleaseRecorded(routed_release, 5, ())], stores)
    assert register.releases() == [routed_release]


def test_a_release_must_carry_its_own_digest_which_goes_on_the_audit() -> None:
    dataset = build_dataset(
        POLICY, "2026Q3", [factories_submission(counts={"B96": 40, "B97": 3, "B98": 25})]
    )
    data = dataset.as_event(built_at=NOW)
    checked = PROCESS.check(ctx(factories.STRATEGIC_DATASET, "hub", data), Stores())
    assert checked is not None
    assert checked.marks == (f"s17A dataset 2026Q3 sha256 {dataset.sha256}",)
    forged = {**data, "sha256": "f" * 64}
    assert "sha256: expected the digest of the dataset's cells" in refusal(
        factories.STRATEGIC_DATASET, "hub", forged
    )
    unsuppressed = json.loads(json.dumps(data))
    hidden = next(c for c in unsuppressed["cells"] if c["count"] is None)
    hidden["count"] = 3
    unsuppressed["sha256"] = build_dataset_digest(unsuppressed)
    assert "released below the threshold of 5" in refusal(
        factories.STRATEGIC_DATASET, "hub", unsuppressed
    )
    # primary suppression alone: B97 (3) hidden, but 68 - 40 - 25 gives it away
    primary_only = json.loads(json.dumps(data))
    for cell in primary_only["cells"]:
        if (cell["district"], cell["level"], cell["area"]) == ("redditch", "outward_code", "B98"):
            assert cell["count"] is None  # hidden by secondary suppression
            cell["count"] = 25
    primary_only["sha256"] = build_dataset_digest(primary_only)
    assert "2 suppressed can be worked out from the released cells and totals (e.g. redditch " in (
        refusal(factories.STRATEGIC_DATASET, "hub", primary_only)
    )
    # a protocol without a strategic: section has no threshold to hold a release to
    bare = ctx(factories.STRATEGIC_DATASET, "hub", data)
    bare.protocol = REF.model_copy(update={"strategic": None})
    with pytest.raises(Refusal, match="expected a protocol with a 'strategic:' section"):
        PROCESS.check(bare, Stores())
    [effect] = PROCESS.record(
        ctx(factories.STRATEGIC_DATASET, "hub", data), routed("nwcsp.analysts"), None, Stores()
    )
    assert isinstance(effect, ReleaseRecorded)
    assert effect.release.recipients == ("nwcsp.analysts",)
    assert effect.release.sha256 == dataset.sha256
    assert effect.cells == dataset.cells  # kept for the console's charts


def factories_submission(**kw: Any) -> Any:
    from hub.strategic.dataset import Submission

    return Submission("west-mercia-police", "2026Q3", "police_recorded_crime", kw["counts"])


def build_dataset_digest(data: dict[str, Any]) -> str:
    from hub.strategic.dataset import Dataset, cells_from_event

    return Dataset(data["period"], data["threshold"], cells_from_event(data), (), ()).sha256


def test_late_submitters_are_alerted_once_per_stage() -> None:
    from hub.strategic.dataset import Submission

    submissions = [
        Submission("hwfrs", "2026Q3", c, {"B97": 1}, received_at="2026-10-02T09:00:00+00:00")
        for c in ("fire_deliberate_fires", "fire_assaults_on_staff")
    ]
    # 2026Q3 is due by 2026-12-31: open on 1 December, due soon from 18 December, then late
    assert {s.state for s in submitter_states(POLICY, submissions, today=dt.date(2026, 12, 1))} == {
        "open",
        "complete",
    }
    soon = plan_alerts(POLICY, submissions, today=dt.date(2026, 12, 20), sent=lambda _: False)
    assert {a.kind for a in soon} == {"submission_due"}
    assert "hwfrs" not in {a.submitter for a in soon}  # complete
    late = plan_alerts(POLICY, submissions, today=dt.date(2027, 1, 2), sent=lambda _: False)
    police = next(a for a in late if a.submitter == "west-mercia-police")
    assert police.data["kind"] == "submission_late"
    assert police.data["categories"] == ["police_recorded_crime", "police_incidents"]
    assert police.data["due_on"] == "2026-12-31"
    sent = {a.alert_id for a in late}
    again = plan_alerts(POLICY, submissions, today=dt.date(2027, 1, 3), sent=sent.__contains__)
    assert [a for a in again if a.period == "2026Q3"] == []
