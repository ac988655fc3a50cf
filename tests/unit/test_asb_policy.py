"""ASB Case Review rules in the reference protocol: who receives what, and the identity's reach."""

from __future__ import annotations

from pathlib import Path

from hub.policies.engine import evaluate, minimise
from hub.policies.loader import load_protocol
from tests import factories

REF = load_protocol(
    Path(__file__).resolve().parents[2] / "hub" / "policies" / "north-worcestershire.yaml"
)
COORDINATOR = "nwcsp.asb-case-review"
POLICE = "west-mercia-police"
BROMSGROVE_BODIES = {POLICE, "hw-icb", "bromsgrove-dc.community-safety", "rp.bdht"}


def delivered(
    event_type: str, publisher: str, data: dict[str, object]
) -> dict[str, dict[str, object]]:
    decision = evaluate(REF, event_id="e", event_type=event_type, publisher=publisher, data=data)
    assert not decision.rejected, decision.reject_reason
    return {r.party: minimise(data, r.fields) for r in decision.deliveries}


def test_the_application_reaches_the_districts_bodies_and_the_identity_only_two() -> None:
    data = factories.asb_application("ASB-1", district="bromsgrove")
    got = delivered(factories.ASB_APPLICATION, COORDINATOR, data)
    assert set(got) == BROMSGROVE_BODIES  # not Redditch's or Wyre Forest's council or provider
    with_identity = {party for party, seen in got.items() if "applicant" in seen}
    assert with_identity == {POLICE, "bromsgrove-dc.community-safety"}
    for party in ("hw-icb", "rp.bdht"):
        assert factories.ASB_APPLICANT_NAME not in repr(got[party])
        assert "representative" not in got[party]
        assert got[party]["applicant_ref"] == "APP-ASB-1"
        assert got[party]["location"] == data["location"]


def test_the_application_is_never_shared_with_schemes() -> None:
    decision = evaluate(
        REF,
        event_id="e",
        event_type=factories.ASB_APPLICATION,
        publisher=COORDINATOR,
        data=factories.asb_application("ASB-1", district="redditch"),
    )
    parties = {r.party for r in decision.deliveries}
    assert parties == {POLICE, "hw-icb", "redditch-bc.community-safety"}
    assert not any(p.startswith(("pubwatch.", "bcrp.")) for p in parties)
    assert all(r.gateway and "Sch 4 para 7" in r.gateway for r in decision.deliveries)


def test_answers_go_to_the_coordinator_only_and_thresholds_by_result() -> None:
    answer = factories.asb_complaints("ASB-1", [("R-1", "2026-03-01", "2026-02-27", "CP-1")])
    assert set(delivered(factories.ASB_COMPLAINTS, "rp.bdht", answer)) == {COORDINATOR}
    for met, rule in ((True, "asb-threshold-met"), (False, "asb-threshold-not-met")):
        decision = evaluate(
            REF,
            event_id="e",
            event_type=factories.ASB_THRESHOLD,
            publisher="hub",
            data=factories.asb_threshold("ASB-1", met=met),
        )
        assert {r.party for r in decision.deliveries} == BROMSGROVE_BODIES | {COORDINATOR}
        by_party = {r.party: r for r in decision.deliveries}
        assert by_party[COORDINATOR].rule_id == rule
        assert "*" in by_party[COORDINATOR].fields  # the coordinator tells the applicant why
        for body in BROMSGROVE_BODIES:  # the result and the counts: never the reasons, which
            assert by_party[body].rule_id == f"{rule}-bodies"  # name others' references
            assert "reasons" not in by_party[body].fields
            assert {"met", "qualifying_complaints"} <= set(by_party[body].fields)


def test_an_alert_reaches_the_coordinator_and_the_body_it_names() -> None:
    got = delivered(factories.ASB_ALERT, "hub", factories.asb_alert("ASB-1", ["rp.bdht"]))
    assert set(got) == {COORDINATOR, "rp.bdht"}


def test_only_the_coordinator_records_applications() -> None:
    decision = evaluate(
        REF,
        event_id="e",
        event_type=factories.ASB_APPLICATION,
        publisher=POLICE,
        data=factories.asb_application("ASB-1"),
    )
    assert decision.rejected


def test_the_demos_asb_case_is_valid_routed_and_meets_the_threshold() -> None:
    import datetime as dt

    from hub.scenarios.asb import asb_case
    from hub.schemas import SchemaRegistry
    from hub.workflows.asb.threshold import Complaint, assess

    registry = SchemaRegistry()
    start = dt.date(2026, 12, 4)
    for seed in range(5):
        events = list(asb_case(seed=seed, start=start))
        assert events == list(asb_case(seed=seed, start=start))  # a seed names one case
        complaints = []
        for event in events:
            registry.encode(event.event_type, event.data)
            decision = evaluate(
                REF,
                event_id="e",
                event_type=event.event_type,
                publisher=event.publisher,
                data=event.data,
            )
            assert not decision.rejected, decision.reject_reason
            assert decision.deliveries
            complaints += [
                Complaint(
                    event.publisher,
                    c["reference"],
                    dt.date.fromisoformat(c["reported_on"]),
                    dt.date.fromisoformat(c["incident_on"]),
                    c["complainant_ref"],
                )
                for c in event.data.get("complaints", ())
            ]
        assert REF.asb is not None
        assert assess(complaints, REF.asb.threshold, received_on=start).met


def test_policy_check_names_an_unknown_coordinator_and_no_bodies(tmp_path: Path) -> None:
    from hub.policies.check import check_protocol
    from hub.schemas import SchemaRegistry

    text = (
        Path(__file__).resolve().parents[2] / "hub/policies/north-worcestershire.yaml"
    ).read_text()
    section = "  coordinator: nwcsp.asb-case-review\n  body_role: asb-relevant-body\n"
    broken = "  coordinator: nwcsp.asb-case-reviw\n  body_role: asb-nobody\n"
    mutated = text.replace(section, broken)
    assert mutated != text
    path = tmp_path / "protocol.yaml"
    path.write_text(mutated)
    report = check_protocol(path, SchemaRegistry())
    assert {(f.code, f.path) for f in report.errors} == {("unknown-party", "asb.coordinator")}
    assert ("no-relevant-bodies", "asb.body_role") in {(f.code, f.path) for f in report.warnings}
