"""The policy engine against the reference protocol: who receives what, and properties.

Every rule of hub/policies/north-worcestershire.yaml is exercised with realistic, schema-valid
events; hypothesis then checks the invariants that make default deny trustworthy over random
payloads, publishers and protocols.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.models import Decision, RecipientDecision
from hub.policies.engine import evaluate, minimise
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol, Rule
from hub.schemas.codec import SchemaRegistry
from hub.settings import default_protocol_path
from tests import factories

REGISTRY = SchemaRegistry()
REF = load_protocol(default_protocol_path())

RAISED = "uk.csp.marac.flag.raised.v1"
UPDATED = "uk.csp.marac.flag.updated.v1"
WITHDRAWN = "uk.csp.marac.flag.withdrawn.v1"
INTEL = "uk.csp.socjag.intel.v1"
BAN = "uk.csp.pubwatch.ban.v1"

POLICE = "west-mercia-police"
LICENSING = "west-mercia-police.licensing"
MARAC = "marac.north-worcs"
CROWN, SUN = "pubwatch.redditch.crown-inn", "pubwatch.redditch.rising-sun"
RETAIL = "bcrp.redditch.kingfisher-retail"
SCHEME_PARTIES = {CROWN, SUN, RETAIL, "bcrp.redditch.town-centre-retail"}
REDDITCH_DEPTS = {
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
    "redditch-bc.community-safety",
}
BROMSGROVE_DEPTS = {"bromsgrove-dc.housing", "bromsgrove-dc.community-safety"}
WYRE_FOREST_DEPTS = {"wyre-forest-dc.housing", "wyre-forest-dc.community-safety"}
SOCJAG_DEPARTMENTS = {
    "redditch-bc.community-safety",
    "bromsgrove-dc.community-safety",
    "wyre-forest-dc.community-safety",
    "wrs",
}
SOCJAG_NEED_TO_KNOW = {"worcestershire-cc.childrens-services", "hwfrs", "probation"}
SOCJAG_OTHERS = SOCJAG_DEPARTMENTS | SOCJAG_NEED_TO_KNOW  # socjag members but the publisher
#: urgent-care settings and the ICB: every flag, countywide (NHS CP-IS; tests/unit/test_health.py)
URGENT_CARE = {
    "hw-icb",
    "wah-nhs.alexandra-ed",
    "wah-nhs.kidderminster-miu",
    "wah-nhs.safeguarding",
}

DEPARTMENT_FLAG = {
    "case_ref",
    "subject_ref",
    "markers",
    "risk_level",
    "address",
    "marac_date",
    "review_date",
    "contact",
}
BAN_SUMMARY = {"ban_ref", "scheme", "subject", "ban_start", "ban_end"}


# --- sample events (schema-valid, as publishers would send them) ---------------------------


def marac_flag(district: str = "redditch", **extra: Any) -> dict[str, Any]:
    return {
        "case_ref": "MARAC-2026-0042",
        "subject_ref": "SUBJ-7F3A",
        "address": {
            "line1": "12 Church Road",
            "town": "Redditch",
            "postcode": "B97 4AB",
            "district": district,
        },
        "risk_level": "high",
        "referral_reason": "dash",
        "dash_score": 16,
        "marac_date": "2026-11-19",
        "review_date": "2027-05-19",
        "contact": {
            "name": "MARAC coordinator",
            "phone": "01527 000000",
            "email": "marac@example.org",
        },
        "markers": ["property", "person"],
        "notes": "confidential: perpetrator damaged the front door lock",
        **extra,
    }


def marac_withdrawal(district: str = "redditch") -> dict[str, Any]:
    flag = marac_flag(district)
    return {
        "case_ref": flag["case_ref"],
        "subject_ref": flag["subject_ref"],
        "address": flag["address"],
        "withdrawn_on": "2027-05-19",
        "reason": "risk_reduced",
        "contact": flag["contact"],
        "notes": "confidential: closed at MARAC",
    }


def intel(
    handling_code: str = "P",
    classification: str = "OFFICIAL",
    share_with: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "intel_ref": "INT-2026-0099",
        "subject_refs": ["SUBJ-1", "SUBJ-2"],
        "category": "county_lines",
        "location": {"area": "Winyates", "district": "redditch"},
        "source_grade": 2,
        "intel_grade": "B",
        "handling_code": handling_code,
        "handling_conditions": (
            {"conditions": "not to be shared further", "share_with": list(share_with)}
            if handling_code == "C"
            else None
        ),
        "classification": classification,
        "summary": "suspected cuckooing at a flat in Winyates",
    }


def ban(
    incident_type: str = "violence", *, scheme: str = "redditch", decided_by: str = "scheme_board"
) -> dict[str, Any]:
    return {
        "ban_ref": "BAN-2026-0007",
        "scheme": scheme,
        "subject": {"name": "A Person", "date_of_birth": "1990-01-02", "photo_ref": "PHOTO-77"},
        "premises": "The Crown Inn",
        "incident_type": incident_type,
        "ban_start": "2026-11-20",
        "ban_end": "2027-11-19",
        "decided_by": decided_by,
    }


def decide(event_type: str, publisher: str, data: Mapping[str, Any]) -> Decision:
    REGISTRY.encode(event_type, data)  # the samples must be events a publisher could send
    return evaluate(REF, event_id="evt-1", event_type=event_type, publisher=publisher, data=data)


def deliveries(decision: Decision) -> dict[str, RecipientDecision]:
    return {r.party: r for r in decision.deliveries}


def outcome_for(decision: Decision, party: str) -> RecipientDecision | None:
    return next((r for r in decision.recipients if r.party == party), None)


# --- MARAC ----------------------------------------------------------------------------------

EXPIRED = factories.MARAC_EXPIRED
ALERT = factories.MARAC_ALERT
OBSERVATION = factories.MARAC_OBSERVATION
REFERRED = factories.MARAC_REFERRED
REVIEWED = factories.MARAC_REVIEWED


def test_hub_expiry_reaches_police_and_coordinator_in_full() -> None:
    decision = decide(EXPIRED, "hub", factories.marac_expired("MARAC-2026-0042"))
    assert set(deliveries(decision)) == {POLICE, MARAC}
    assert all(r.rule_id == "marac-expiry-full" for r in decision.deliveries)


def test_expiry_and_updates_reach_earlier_holders_by_the_art19_correction() -> None:
    holders = REDDITCH_DEPTS | {"bromsgrove-dc.housing"}
    data = factories.marac_expired("MARAC-2026-0042")
    REGISTRY.encode(EXPIRED, data)
    decision = evaluate(
        REF, event_id="e", event_type=EXPIRED, publisher="hub", data=data, previous=holders
    )
    got = deliveries(decision)
    assert set(got) == holders | {POLICE, MARAC}
    for party in holders:
        assert got[party].rule_id == "marac-art19-holders"
        assert "address" not in got[party].fields


def test_a_correction_never_overrides_a_prohibition() -> None:
    decision = evaluate(
        REF,
        event_id="e",
        event_type=UPDATED,
        publisher=MARAC,
        data=marac_flag(),
        previous={CROWN},  # a scheme that somehow held it must still not be sent MARAC data
    )
    crown = outcome_for(decision, CROWN)
    assert crown is not None
    assert crown.outcome == "withhold"
    assert crown.rule_id == "marac-never-to-schemes"


def test_a_review_reaches_district_departments_minimally() -> None:
    decision = decide(REVIEWED, MARAC, factories.marac_reviewed("MARAC-2026-0042"))
    got = deliveries(decision)
    assert REDDITCH_DEPTS | {POLICE} <= set(got)
    assert set(got[sorted(REDDITCH_DEPTS)[0]].fields) <= DEPARTMENT_FLAG | {"markers"}


def test_alerts_reach_only_the_coordinator_and_only_from_the_hub() -> None:
    alert = factories.marac_alert("MARAC-2026-0042")
    assert set(deliveries(decide(ALERT, "hub", alert))) == {MARAC}
    assert decide(ALERT, POLICE, alert).rejected


def test_an_observation_goes_to_the_coordinator_only() -> None:
    decision = decide(OBSERVATION, "redditch-bc.housing-repairs", factories.marac_observation("M1"))
    assert set(deliveries(decision)) == {MARAC}
    assert decide(OBSERVATION, CROWN, factories.marac_observation("M1")).rejected


def test_a_referred_observation_goes_to_the_police_naming_the_condition_relied_on() -> None:
    data = factories.marac_referred("M1", basis="cannot_reasonably_be_obtained")
    got = deliveries(decide(REFERRED, MARAC, data))
    assert set(got) == {POLICE}
    condition = got[POLICE].condition or ""
    assert condition.endswith("relied on consent.basis=cannot_reasonably_be_obtained")


@pytest.mark.parametrize("event_type", [RAISED, UPDATED, WITHDRAWN])
@pytest.mark.parametrize(("publisher", "holder"), [(MARAC, POLICE), (POLICE, MARAC)])
def test_marac_flag_in_full_to_police_and_coordinator(
    event_type: str, publisher: str, holder: str
) -> None:
    data = marac_withdrawal() if event_type == WITHDRAWN else marac_flag()
    got = deliveries(decide(event_type, publisher, data))[holder]
    assert got.rule_id == "marac-flag-full"
    assert minimise(data, got.fields) == data
    assert got.lawful_basis == "UK GDPR Art 6(1)(e) public task"
    assert publisher not in deliveries(decide(event_type, publisher, data))


@pytest.mark.parametrize("event_type", [RAISED, UPDATED])
def test_marac_flag_district_departments_get_minimal_flag(event_type: str) -> None:
    data = marac_flag("redditch", **({"change_reason": "risk up"} if event_type == UPDATED else {}))
    decision = decide(event_type, MARAC, data)
    got = deliveries(decision)
    assert set(got) == REDDITCH_DEPTS | {POLICE} | URGENT_CARE
    for dept in REDDITCH_DEPTS:
        assert got[dept].rule_id == "marac-flag-district-departments"
        payload = minimise(data, got[dept].fields)
        assert set(payload) == DEPARTMENT_FLAG
        assert not {"notes", "dash_score", "referral_reason", "rationale"} & set(payload)
        assert payload["marac_date"] == data["marac_date"]  # the flag-only notice promises it
        assert payload["address"] == data["address"]
    for dept in BROMSGROVE_DEPTS | WYRE_FOREST_DEPTS:
        withheld = outcome_for(decision, dept)
        assert withheld is not None
        assert withheld.outcome == "withhold"
        assert "party.district == event.address.district" in withheld.reason


def test_marac_flag_follows_the_district_of_the_address() -> None:
    got = deliveries(decide(RAISED, MARAC, marac_flag("bromsgrove")))
    assert set(got) == BROMSGROVE_DEPTS | {POLICE} | URGENT_CARE
    outside = deliveries(decide(RAISED, MARAC, marac_flag("worcester")))
    # a move to South Worcestershire: no department here; the South's hub gets the transfer
    assert set(outside) == {POLICE, "swcsp-hub"} | URGENT_CARE
    assert outside["swcsp-hub"].rule_id == "marac-transfer-to-south"


def test_marac_withdrawal_reaches_the_departments_holding_the_flag() -> None:
    data = marac_withdrawal("wyre_forest")
    got = deliveries(decide(WITHDRAWN, POLICE, data))
    assert set(got) == WYRE_FOREST_DEPTS | {MARAC}
    for dept in WYRE_FOREST_DEPTS:
        assert got[dept].rule_id == "marac-withdrawal-district-departments"
        payload = minimise(data, got[dept].fields)
        assert set(payload) == {"case_ref", "subject_ref", "address", "withdrawn_on", "contact"}


@pytest.mark.parametrize("event_type", [RAISED, UPDATED, WITHDRAWN])
def test_marac_never_reaches_pubwatch_or_retail(event_type: str) -> None:
    data = marac_withdrawal() if event_type == WITHDRAWN else marac_flag()
    assert not SCHEME_PARTIES & set(deliveries(decide(event_type, MARAC, data)))


def test_marac_flag_from_a_department_is_rejected() -> None:
    decision = decide(RAISED, "redditch-bc.housing-repairs", marac_flag())
    assert decision.rejected
    assert decision.reject_reason is not None
    assert "may not publish" in decision.reject_reason
    assert decision.recipients == ()


# --- SOCJAG ---------------------------------------------------------------------------------


def test_socjag_p_official_reaches_every_socjag_member() -> None:
    data = intel("P", "OFFICIAL")
    got = deliveries(decide(INTEL, POLICE, data))
    assert set(got) == SOCJAG_OTHERS
    for party in got.values():
        assert party.rule_id == "socjag-intel-p-official"
        assert "handling_conditions" not in minimise(data, party.fields)


def test_socjag_p_official_sensitive_never_to_department_feeds() -> None:
    decision = decide(INTEL, POLICE, intel("P", "OFFICIAL-SENSITIVE"))
    got = deliveries(decision)
    assert set(got) == SOCJAG_NEED_TO_KNOW
    assert all(r.rule_id == "socjag-intel-p-sensitive" for r in got.values())
    for dept in SOCJAG_DEPARTMENTS:
        withheld = outcome_for(decision, dept)
        assert withheld is not None
        assert withheld.outcome == "withhold"


def test_socjag_c_only_to_parties_its_conditions_name() -> None:
    share = ["probation", "redditch-bc.community-safety", CROWN, "hw-icb"]
    data = intel("C", "OFFICIAL", share)
    got = deliveries(decide(INTEL, POLICE, data))
    # police publish it; crown-inn and hw-icb are not socjag members, so the role never
    # selects them even though the conditions name them
    assert set(got) == {"probation", "redditch-bc.community-safety"}
    for party in got.values():
        assert party.rule_id == "socjag-intel-c-conditions"
        assert minimise(data, party.fields)["handling_conditions"] == data["handling_conditions"]


def test_socjag_c_sensitive_still_never_to_department_feeds() -> None:
    decision = decide(
        INTEL, POLICE, intel("C", "OFFICIAL-SENSITIVE", ["probation", "wrs", "hwfrs"])
    )
    assert set(deliveries(decision)) == {"probation", "hwfrs"}
    wrs = outcome_for(decision, "wrs")
    assert wrs is not None
    assert wrs.outcome == "withhold"
    assert wrs.rule_id == "sensitive-never-department-wide"


@pytest.mark.parametrize(
    "data",
    [
        intel("P", "OFFICIAL"),
        intel("P", "OFFICIAL-SENSITIVE"),
        intel("C", "OFFICIAL", [CROWN, SUN, RETAIL]),
    ],
)
def test_intel_never_reaches_pubwatch_or_retail(data: dict[str, Any]) -> None:
    assert not SCHEME_PARTIES & set(deliveries(decide(INTEL, POLICE, data)))


def test_intel_from_anyone_but_the_police_is_rejected() -> None:
    assert decide(INTEL, "probation", intel()).rejected


# --- Pub Watch and the retail partnership ---------------------------------------------------


def test_ban_reaches_other_scheme_members_and_police_licensing() -> None:
    data = ban("violence")
    decision = decide(BAN, CROWN, data)
    got = deliveries(decision)
    assert set(got) == {SUN, LICENSING}
    member = minimise(data, got[SUN].fields)
    assert set(member) == BAN_SUMMARY
    assert member["subject"] == data["subject"]  # name, date of birth, photo reference
    assert got[SUN].rule_id == "pubwatch-ban-scheme-members"
    assert got[LICENSING].rule_id == "pubwatch-ban-police-licensing"
    assert minimise(data, got[LICENSING].fields) == data
    retail = outcome_for(decision, RETAIL)
    assert retail is not None
    assert retail.outcome == "withhold"


def test_theft_ban_stays_in_its_own_scheme_while_the_schemes_are_not_linked() -> None:
    data = ban("theft")
    decision = decide(BAN, SUN, data)
    got = deliveries(decision)
    assert set(got) == {CROWN, LICENSING}
    assert got[CROWN].rule_id == "pubwatch-ban-scheme-members"  # the scheme's own ban
    for retailer in RETAILERS:
        withheld = outcome_for(decision, retailer)
        assert withheld is not None
        assert withheld.outcome == "withhold"
        assert withheld.rule_id == "pubwatch-theft-ban-retail"
        assert f"agreement {LINK_ISA} " in withheld.reason
        assert "not in force" in withheld.reason
    assert decision.suspended_agreements == ()  # never in force: nothing lapsed to report


@pytest.mark.parametrize("incident", ["violence", "disorder", "drugs", "other"])
def test_night_time_bans_never_reach_retail(incident: str) -> None:
    assert RETAIL not in deliveries(decide(BAN, CROWN, ban(incident)))


def test_ban_decided_by_police_is_rejected() -> None:
    decision = decide(BAN, CROWN, ban(decided_by="police"))
    assert decision.rejected
    assert decision.reject_rule == "ban-decided-by-police"
    assert decision.recipients == ()


@pytest.mark.parametrize(
    ("publisher", "data"),
    [
        (CROWN, ban(scheme="bromsgrove")),  # not a member of that scheme
        (RETAIL, ban("theft")),  # retailers do not publish Pub Watch bans
        (POLICE, ban()),  # the scheme decides, not the police
        ("no-such-party", ban()),
    ],
)
def test_ban_from_a_publisher_not_allowed_is_rejected(publisher: str, data: dict[str, Any]) -> None:
    decision = decide(BAN, publisher, data)
    assert decision.rejected
    assert decision.reject_reason is not None
    assert "may not publish" in decision.reject_reason


BAN_UPDATED = factories.BAN_UPDATED
BAN_EXPIRED = factories.BAN_EXPIRED
EXCLUSION = factories.RETAIL_EXCLUSION
TOWN_CENTRE = "bcrp.redditch.town-centre-retail"
RETAILERS = {RETAIL, TOWN_CENTRE}
LINK_ISA = "REDDITCH-PUBWATCH-BCRP-LINK-2025"


def _linked() -> Protocol:
    """The reference protocol with the linked-scheme agreement in force."""
    return REF.model_copy(
        update={
            "agreements": tuple(
                a.model_copy(update={"in_force": True}) if a.id == LINK_ISA else a
                for a in REF.agreements
            )
        }
    )


def test_retail_exclusion_reaches_the_other_retail_members_only() -> None:
    data = factories.retail_exclusion("BCRP-1")
    decision = decide(EXCLUSION, RETAIL, data)
    got = deliveries(decision)
    assert set(got) == {TOWN_CENTRE}
    assert got[TOWN_CENTRE].rule_id == "retail-exclusion-scheme-members"
    assert set(minimise(data, got[TOWN_CENTRE].fields)) == BAN_SUMMARY
    for pub in (CROWN, SUN):  # a shoplifter is invisible to pubs: audited, naming the link
        withheld = outcome_for(decision, pub)
        assert withheld is not None
        assert withheld.outcome == "withhold"
        assert f"agreement {LINK_ISA} " in withheld.reason
    assert outcome_for(decision, LICENSING) is None  # no rule names anyone else


@pytest.mark.parametrize("publisher", [CROWN, LICENSING, POLICE])
def test_only_retail_members_publish_retail_exclusions(publisher: str) -> None:
    decision = decide(EXCLUSION, publisher, factories.retail_exclusion("BCRP-1"))
    assert decision.rejected
    assert "may not publish" in (decision.reject_reason or "")


def test_linked_schemes_share_theft_exclusions_both_ways() -> None:
    linked = _linked()
    ban_decision = evaluate(
        linked, event_id="e1", event_type=BAN, publisher=CROWN, data=ban("theft")
    )
    got = deliveries(ban_decision)
    assert {got[r].rule_id for r in RETAILERS} == {"pubwatch-theft-ban-retail"}
    exclusion = evaluate(
        linked,
        event_id="e2",
        event_type=EXCLUSION,
        publisher=RETAIL,
        data=factories.retail_exclusion("BCRP-1"),
    )
    got = deliveries(exclusion)
    assert set(got) == {TOWN_CENTRE, CROWN, SUN}
    assert got[SUN].rule_id == "retail-exclusion-linked-pubs"
    # linked for theft only: abuse of staff stays with the retailers
    other = evaluate(
        linked,
        event_id="e3",
        event_type=EXCLUSION,
        publisher=RETAIL,
        data=factories.retail_exclusion("BCRP-2", incident_type="abuse_of_staff"),
    )
    assert set(deliveries(other)) == {TOWN_CENTRE}


def test_night_time_ban_never_reaches_retail_even_where_theft_is_linked() -> None:
    decision = decide(BAN, CROWN, ban("disorder"))
    retail = outcome_for(decision, RETAIL)
    assert retail is not None
    assert retail.outcome == "withhold"
    assert retail.rule_id == "night-time-bans-never-to-retail"


def test_ban_update_reaches_licensing_and_every_earlier_holder_with_the_period_only() -> None:
    data = factories.pubwatch_ban_updated("BAN-2026-0007")
    REGISTRY.encode(BAN_UPDATED, data)
    holders = {CROWN, RETAIL, LICENSING}  # CROWN published the theft ban: it holds it too
    decision = evaluate(
        REF, event_id="e", event_type=BAN_UPDATED, publisher=SUN, data=data, previous=holders
    )
    got = deliveries(decision)
    assert set(got) == holders
    assert got[LICENSING].rule_id == "pubwatch-ban-police-licensing"
    for party in (CROWN, RETAIL):
        assert got[party].rule_id == "pubwatch-art19-holders"
        assert set(minimise(data, got[party].fields)) == set(data) - {"decided_by"}


def test_ban_update_reaches_no_party_that_never_held_the_ban() -> None:
    data = factories.pubwatch_ban_updated("BAN-2026-0007")
    got = deliveries(evaluate(REF, event_id="e", event_type=BAN_UPDATED, publisher=SUN, data=data))
    assert set(got) == {LICENSING}


def test_retail_exclusion_expiry_reaches_its_holders_only() -> None:
    data = factories.retail_exclusion_expired("BCRP-1")
    REGISTRY.encode(factories.RETAIL_EXPIRED, data)
    decision = evaluate(
        REF,
        event_id="e",
        event_type=factories.RETAIL_EXPIRED,
        publisher="hub",
        data=data,
        previous={RETAIL, TOWN_CENTRE},
    )
    got = deliveries(decision)
    assert set(got) == {RETAIL, TOWN_CENTRE}
    assert {d.rule_id for d in got.values()} == {"retail-art19-holders"}


def test_ban_update_decided_by_police_or_sent_by_a_retailer_is_rejected() -> None:
    police = factories.pubwatch_ban_updated("BAN-1", decided_by="police")
    assert decide(BAN_UPDATED, CROWN, police).reject_rule == "ban-decided-by-police"
    retailer = decide(BAN_UPDATED, RETAIL, factories.pubwatch_ban_updated("BAN-1"))
    assert retailer.rejected
    assert retailer.reject_reason is not None
    assert "may not publish" in retailer.reject_reason


def test_ban_expiry_from_the_hub_withdraws_the_photo_at_every_holder() -> None:
    data = factories.pubwatch_ban_expired("BAN-2026-0007")
    REGISTRY.encode(BAN_EXPIRED, data)
    holders = {CROWN, SUN, LICENSING}
    decision = evaluate(
        REF, event_id="e", event_type=BAN_EXPIRED, publisher="hub", data=data, previous=holders
    )
    got = deliveries(decision)
    assert set(got) == holders
    assert got[LICENSING].rule_id == "pubwatch-ban-expiry-licensing"
    for party in (CROWN, SUN):
        assert got[party].rule_id == "pubwatch-art19-holders"
        assert minimise(data, got[party].fields) == data  # reference, period, photo to delete


def test_ban_expiry_from_anyone_but_the_hub_is_rejected() -> None:
    decision = decide(BAN_EXPIRED, CROWN, factories.pubwatch_ban_expired("BAN-2026-0007"))
    assert decision.rejected
    assert decision.reject_reason is not None
    assert "may not publish" in decision.reject_reason


def test_an_event_type_no_rule_covers_is_default_denied() -> None:
    decision = evaluate(
        REF,
        event_id="e",
        event_type="uk.csp.delivery.ack.v1",
        publisher=POLICE,
        data={"acknowledged_event_id": "x"},
    )
    assert not decision.rejected
    assert decision.deliveries == ()
    assert [r.party for r in decision.recipients] == ["*"]
    assert "default deny" in decision.recipients[0].reason


def test_every_reference_rule_is_exercised() -> None:
    """A new rule in the reference protocol needs a who-receives-what test here."""
    samples = [
        (RAISED, MARAC, marac_flag()),
        (RAISED, MARAC, marac_flag("worcester")),  # transferred to the South's hub
        (RAISED, "swcsp-hub", marac_flag()),  # a transfer from the South's hub
        (REVIEWED, "swcsp-hub", factories.marac_reviewed("MARAC-1")),  # Art 19, transferred
        (WITHDRAWN, "swcsp-hub", marac_withdrawal()),
        (EXPIRED, "swcsp-hub", factories.marac_expired("MARAC-1")),
        (  # the North's coordinator takes a case the South transferred: back to the South
            "uk.csp.marac.transfer.ownership.v1",
            MARAC,
            {"case_ref": "MARAC-1", "previous_owner": "swcsp-hub", "taken_on": "2026-12-03"},
        ),
        (  # the South took a case the North transferred
            "uk.csp.marac.transfer.ownership.v1",
            "swcsp-hub",
            {"case_ref": "MARAC-1", "previous_owner": "nwcsp-hub", "taken_on": "2026-12-03"},
        ),
        (  # so the hub tells the flag's holders to withdraw it
            "uk.csp.marac.transfer.withdraw.v1",
            "hub",
            {
                "case_ref": "MARAC-1",
                "new_owner": "swcsp-hub",
                "taken_on": "2026-12-03",
                "instruction": "withdraw",
            },
        ),
        (  # the South's hub's proof that its log holds its record of a hand-over
            "uk.csp.marac.transfer.proof.v1",
            "swcsp-hub",
            factories.transfer_proof(),
        ),
        (  # this hub's own proof for the South's hub: the disclosure is a rule's like any
            "uk.csp.marac.transfer.proof.v1",
            "hub",
            factories.transfer_proof(peer="swcsp-hub"),
        ),
        (  # the South's hub's receipt for a transfer
            "uk.csp.marac.transfer.receipt.v1",
            "swcsp-hub",
            {
                "case_ref": "MARAC-1",
                "transfer_event_id": "e-1",
                "state": "received",
                "receiver": "nwcsp-hub",
                "received_at": "2026-11-20T10:15:30Z",
            },
        ),
        (UPDATED, POLICE, marac_flag()),
        (WITHDRAWN, MARAC, marac_withdrawal()),
        (INTEL, POLICE, intel("P", "OFFICIAL")),
        (INTEL, POLICE, intel("P", "OFFICIAL-SENSITIVE")),
        (INTEL, POLICE, intel("C", "OFFICIAL", ["probation"])),
        (factories.SOCJAG_SANITISED, POLICE, factories.socjag_sanitised("INT-1", "e-1")),
        (BAN, CROWN, ban("theft")),
        (BAN, CROWN, ban("violence")),
        (EXCLUSION, RETAIL, factories.retail_exclusion("BCRP-1")),
        (factories.AGREEMENT_ALERT, "hub", factories.agreement_alert("NW-CSP-ISA-MARAC-2025")),
        (BAN_EXPIRED, "hub", factories.pubwatch_ban_expired("BAN-2026-0007")),
        (EXPIRED, "hub", factories.marac_expired("MARAC-2026-0042")),
        (ALERT, "hub", factories.marac_alert("MARAC-2026-0042")),
        (OBSERVATION, "redditch-bc.housing-repairs", factories.marac_observation("MARAC-1")),
        (REFERRED, MARAC, factories.marac_referred("MARAC-1")),
        (factories.MARAC_ACCESS, "wah-nhs.alexandra-ed", factories.marac_access("MARAC-1")),
        # ASB Case Review (tests/unit/test_asb_policy.py says who receives what)
        (factories.ASB_APPLICATION, "nwcsp.asb-case-review", factories.asb_application("ASB-1")),
        (factories.ASB_OUTCOME, "nwcsp.asb-case-review", factories.asb_outcome("ASB-1")),
        (factories.ASB_COMPLAINTS, POLICE, factories.asb_complaints("ASB-1")),
        (factories.ASB_THRESHOLD, "hub", factories.asb_threshold("ASB-1", met=True)),
        (factories.ASB_THRESHOLD, "hub", factories.asb_threshold("ASB-1", met=False)),
        (factories.ASB_ACTION, POLICE, factories.asb_action("ASB-1")),
        (factories.ASB_ALERT, "hub", factories.asb_alert("ASB-1", ["rp.bdht"])),
        (factories.STRATEGIC_SUBMISSION, "hwfrs", factories.strategic_submission("hwfrs")),
        (factories.STRATEGIC_DATASET, "hub", factories.strategic_dataset()),
        (factories.STRATEGIC_ALERT, "hub", factories.strategic_alert("hwfrs")),
    ]
    used = {r.rule_id for t, p, d in samples for r in decide(t, p, d).deliveries}
    # rules under an agreement not in force deliver only once it is (the linked schemes)
    linked = _linked()
    used |= {
        r.rule_id
        for t, p, d in samples
        for r in evaluate(linked, event_id="e", event_type=t, publisher=p, data=d).deliveries
    }
    assert used == {r.id for r in REF.rules}


# --- the engine itself ------------------------------------------------------------------------


def _tiny_protocol(recipients: list[dict[str, Any]]) -> Protocol:
    return Protocol.model_validate(
        {
            "protocol": {"id": "t", "title": "t", "version": "1"},
            "relevant_authorities": ["council"],
            "parties": [
                {"id": "pub", "name": "P", "kind": "council"},
                {"id": "a.dept", "name": "A", "kind": "council", "roles": ["r"], "district": "x"},
            ],
            "rules": [
                {
                    "id": "r1",
                    "description": "d",
                    "events": [WITHDRAWN],
                    "publishers": {"parties": ["pub"]},
                    "recipients": recipients,
                    "fields": ["case_ref"],
                    "lawful_basis": "b",
                }
            ],
        }
    )


def test_recipient_clauses_are_alternatives() -> None:
    """A later clause still grants when an earlier clause selects the party but fails."""
    protocol = _tiny_protocol(
        [
            {"roles": ["r"], "when": [{"party": "district", "equals_field": "address.district"}]},
            {"parties": ["a.dept"]},
        ]
    )
    decision = evaluate(
        protocol, event_id="e", event_type=WITHDRAWN, publisher="pub", data=marac_withdrawal()
    )
    assert set(deliveries(decision)) == {"a.dept"}


def test_failed_clauses_explain_the_withhold() -> None:
    protocol = _tiny_protocol(
        [{"roles": ["r"], "when": [{"party": "district", "equals_field": "address.district"}]}]
    )
    decision = evaluate(
        protocol, event_id="e", event_type=WITHDRAWN, publisher="pub", data=marac_withdrawal()
    )
    withheld = outcome_for(decision, "a.dept")
    assert withheld is not None
    assert withheld.outcome == "withhold"
    assert withheld.rule_id == "r1"
    assert "condition not met" in withheld.reason


def test_minimise_keeps_only_allow_listed_paths() -> None:
    data: dict[str, Any] = {"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2], "f": None}
    assert minimise(data, ["a.c.d", "f", "zz", "a.b.q"]) == {"a": {"c": {"d": 2}}, "f": None}
    assert minimise(data, ["a", "a.b"]) == {"a": {"b": 1, "c": {"d": 2}}}
    everything = minimise(data, ["*"])
    assert everything == data
    everything["a"]["b"] = 99
    assert data["a"]["b"] == 1  # a copy, never the publisher's object


# --- properties -------------------------------------------------------------------------------

_INTERESTING = [
    *REF.party_ids,
    "redditch",
    "bromsgrove",
    "wyre_forest",
    "OFFICIAL",
    "OFFICIAL-SENSITIVE",
    "P",
    "C",
    "theft",
    "police",
]
_STRINGS = st.sampled_from(_INTERESTING) | st.text(max_size=6)


def _payloads(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Random JSON payloads shaped by an Avro schema, strings biased to policy-relevant ones."""
    if isinstance(schema, str):
        if schema in named:
            return _payloads(named[schema], named)
        primitives: dict[str, st.SearchStrategy[Any]] = {
            "string": _STRINGS,
            "int": st.integers(-3, 30),
            "long": st.integers(-3, 30),
            "boolean": st.booleans(),
            "null": st.none(),
        }
        return primitives[schema]
    if isinstance(schema, list):
        return st.one_of(*(_payloads(branch, named) for branch in schema))
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _payloads(kind, named)
    if kind in ("record", "enum"):
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
    if kind == "record":
        required = {f["name"]: _payloads(f["type"], named) for f in schema["fields"]}
        optional = {
            k: required.pop(k) for k in [f["name"] for f in schema["fields"] if "default" in f]
        }
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_payloads(schema["items"], named), max_size=4)
    if schema.get("logicalType") == "date":
        return st.dates().map(lambda d: d.isoformat())
    if "hub_min" in schema:
        return st.integers(schema["hub_min"], schema["hub_max"])
    return _payloads(kind, named)


_EVENTS = {t: _payloads(REGISTRY.raw(t), {}) for t in REGISTRY.types}


def _role_regex(role: str) -> re.Pattern[str]:
    """A role template (``pubwatch-member:{scheme}``) as the roles it can become."""
    parts = re.split(r"\{[a-z0-9_.]+\}", role)
    return re.compile(".+".join(re.escape(part) for part in parts))


def _holding(protocol: Protocol, roles: Sequence[str]) -> set[str]:
    patterns = [_role_regex(role) for role in roles]
    return {
        p.id for p in protocol.parties if any(x.fullmatch(r) for x in patterns for r in p.roles)
    }


def _may_publish(event_type: str) -> list[str]:
    """Parties some reference rule lets publish this type, so most samples reach recipients."""
    ids: set[str] = set()
    for rule in REF.rules_for(event_type):
        ids |= set(rule.publishers.parties) | _holding(REF, rule.publishers.roles)
    return sorted(ids)


@st.composite
def events(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    event_type = draw(st.sampled_from(REGISTRY.types))
    anyone = st.sampled_from([*REF.party_ids, "no-such-party"])
    likely = _may_publish(event_type)
    publisher = draw(st.sampled_from(likely) | anyone if likely else anyone)
    return event_type, publisher, draw(_EVENTS[event_type])


_ROLES = [
    *sorted({r for p in REF.parties for r in p.roles}),
    "pubwatch-member:{scheme}",
    "retail-member:{scheme}",
]


@st.composite
def protocols(draw: st.DrawFn) -> Protocol:
    """The reference parties and prohibitions with random rules."""
    rules = []
    for i in range(draw(st.integers(1, 5))):
        covered = draw(
            st.lists(st.sampled_from(REGISTRY.types), min_size=1, max_size=2, unique=True)
        )
        common = sorted(set.intersection(*(set(REGISTRY.field_paths(t)) for t in covered)))
        some = st.lists(st.sampled_from(common), min_size=1, max_size=4) if common else st.nothing()
        fields = draw(st.just(["*"]) | some)
        ids = st.lists(st.sampled_from(REF.party_ids), max_size=3)
        roles = st.lists(st.sampled_from(_ROLES), max_size=2)
        clauses = st.fixed_dictionaries({"parties": ids, "roles": roles})
        rules.append(
            Rule.model_validate(
                {
                    "id": f"rule-{i}",
                    "description": "random",
                    "events": covered,
                    "publishers": draw(clauses),
                    "recipients": draw(st.lists(clauses, min_size=1, max_size=2)),
                    "fields": fields,
                    "lawful_basis": draw(st.sampled_from(["public task", "legitimate interests"])),
                }
            )
        )
    return REF.model_copy(update={"rules": tuple(rules)})


def _named(protocol: Protocol, event_type: str) -> set[str]:
    """Every party a rule covering the event type names, by id or (template) role."""
    named: set[str] = set()
    for rule in protocol.rules_for(event_type):
        for clause in rule.recipients:
            named |= set(clause.parties) | _holding(protocol, clause.roles)
    return named


def _paths(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, bool]]:
    """Every dotted path of a payload, with whether it is a leaf (not a non-empty mapping)."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield path, False
            yield from _paths(value, f"{path}.")
        else:
            yield path, True


def _allowed(path: str, *, leaf: bool, allow: Sequence[str]) -> bool:
    """A leaf must be an allowed path or inside one; a sub-record may also lead to one."""
    if "*" in allow:
        return True
    return any(
        path == f or path.startswith(f"{f}.") or (not leaf and f.startswith(f"{path}."))
        for f in allow
    )


def test_allowed_helper_catches_leaks() -> None:
    leaked = {"address": {"district": "x", "line1": "y"}, "notes": "z"}
    bad = [
        p for p, leaf in _paths(leaked) if not _allowed(p, leaf=leaf, allow=["address.district"])
    ]
    assert bad == ["address.line1", "notes"]


def _check_invariants(protocol: Protocol, event_type: str, publisher: str, data: Any) -> None:
    decision = evaluate(
        protocol, event_id="e", event_type=event_type, publisher=publisher, data=data
    )
    # (c) deterministic, and independent of the order of the payload's keys
    again = evaluate(
        protocol,
        event_id="e",
        event_type=event_type,
        publisher=publisher,
        data=dict(reversed(list(data.items()))),
    )
    assert again == decision
    # (a) no delivery to a party no rule names for this event type, nor to the publisher
    got = deliveries(decision)
    assert set(got) <= _named(protocol, event_type) - {publisher}
    # (b) a delivery never carries a path outside its rule's allow-list
    by_id = {r.id: r for r in protocol.rules}
    for party, recipient in got.items():
        assert recipient.rule_id is not None
        rule = by_id[recipient.rule_id]
        assert event_type in rule.events
        assert recipient.fields == rule.fields
        payload = minimise(data, recipient.fields)
        leaks = [p for p, leaf in _paths(payload) if not _allowed(p, leaf=leaf, allow=rule.fields)]
        assert not leaks, f"{party} would receive {leaks} outside {rule.fields}"


@settings(max_examples=300, deadline=None)
@given(events())
def test_reference_protocol_invariants(event: tuple[str, str, dict[str, Any]]) -> None:
    _check_invariants(REF, *event)


@settings(max_examples=200, deadline=None)
@given(protocols(), events())
def test_random_protocol_invariants(
    protocol: Protocol, event: tuple[str, str, dict[str, Any]]
) -> None:
    _check_invariants(protocol, *event)
