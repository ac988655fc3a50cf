"""SOCJAG intelligence handling: coded conditions, need-to-know, 5x5x5 grades, sanitised versions.

The engine and the router run against the reference protocol (hub/policies/
north-worcestershire.yaml); expected recipients are computed from the protocol's own party
declarations where that is the point (who can meet which condition), so a change to a party's
``handling:`` line changes the expectation rather than silently passing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub.agents.routing import Router
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.subjects import case_ref
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, Decision, EventAttributes, Origin, QuarantineReason
from hub.policies.check import check_protocol
from hub.policies.engine import evaluate, minimise
from hub.policies.loader import load_protocol
from hub.policies.model import Condition, Protocol, SocjagPolicy
from hub.schemas import SchemaRegistry
from hub.settings import default_protocol_path
from hub.workflows.socjag import check_intel
from tests.factories import (
    SOCJAG,
    SOCJAG_SANITISED,
    socjag_intel,
    socjag_legacy,
    socjag_sanitised,
)

REGISTRY = SchemaRegistry()
REF = load_protocol(default_protocol_path())
POLICE = "west-mercia-police"
FIXED = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
SCHEMES = {p.id for p in REF.parties if p.kind in {"pubwatch", "retail"}}
DEPARTMENT_FEEDS = {p.id for p in REF.parties if p.scope == "department"}


def decide(event_type: str, data: dict[str, Any]) -> Decision:
    REGISTRY.encode(event_type, data)  # only events a publisher could send
    return evaluate(REF, event_id="e-1", event_type=event_type, publisher=POLICE, data=data)


def delivered(decision: Decision) -> set[str]:
    return {r.party for r in decision.deliveries}


def can_meet(requirements: set[str]) -> set[str]:
    party_ids = {p.id for p in REF.parties if requirements <= set(p.handling)}
    return party_ids


# --- coded handling conditions --------------------------------------------------------------


def test_c_item_reaches_only_named_parties_that_can_meet_every_condition() -> None:
    named = ["probation", "redditch-bc.community-safety", "wrs", "hwfrs"]
    wanted = {"no-onward-disclosure", "secure-storage"}
    data = socjag_intel("SJ-1", handling_code="C", share_with=named, requirements=sorted(wanted))
    decision = decide(SOCJAG, data)
    assert delivered(decision) == set(named) & can_meet(wanted)
    assert delivered(decision)  # the test means something: some named party can meet them
    for party in set(named) - can_meet(wanted):
        outcome = next(r for r in decision.recipients if r.party == party)
        assert outcome.outcome == "withhold"
        assert outcome.rule_id == "socjag-intel-c-conditions"
        missing = wanted - set(next(p for p in REF.parties if p.id == party).handling)
        assert f"cannot meet {', '.join(sorted(missing))}" in outcome.reason
    for outcome in decision.deliveries:  # the conditions travel with the item
        shown = minimise(data, outcome.fields)["handling_conditions"]
        assert shown == data["handling_conditions"]


def test_c_item_without_coded_requirements_keeps_the_free_text_rule() -> None:
    data = socjag_intel("SJ-2", handling_code="C", share_with=["wrs", "probation"])
    assert delivered(decide(SOCJAG, data)) == {"wrs", "probation"}


def test_named_officer_only_never_reaches_a_department_feed() -> None:
    data = socjag_intel(
        "SJ-3",
        handling_code="C",
        share_with=sorted(DEPARTMENT_FEEDS),
        requirements=["named-officer-only"],
    )
    assert not delivered(decide(SOCJAG, data)) & DEPARTMENT_FEEDS


# --- OFFICIAL-SENSITIVE: need-to-know only ----------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        socjag_intel("SJ-4", classification="OFFICIAL-SENSITIVE"),
        socjag_intel(
            "SJ-5",
            handling_code="C",
            classification="OFFICIAL-SENSITIVE",
            share_with=sorted(p.id for p in REF.parties),
        ),
    ],
    ids=["P", "C-naming-every-party"],
)
def test_official_sensitive_never_reaches_department_feeds(data: dict[str, Any]) -> None:
    decision = decide(SOCJAG, data)
    assert delivered(decision)
    got = delivered(decision)
    assert all(p.scope in {"agency", "named"} for p in REF.parties if p.id in got)
    socjag_feeds = {p.id for p in REF.parties if p.has_role("socjag-member")} & DEPARTMENT_FEEDS
    for party in socjag_feeds:
        outcome = next(r for r in decision.recipients if r.party == party)
        assert outcome.outcome == "withhold"


# --- sanitised versions -----------------------------------------------------------------------


def test_sanitised_version_circulates_wider_but_never_to_schemes() -> None:
    data = socjag_sanitised("SJ-6", "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10")
    decision = decide(SOCJAG_SANITISED, data)
    got = delivered(decision)
    members = {p.id for p in REF.parties if p.has_role("socjag-member")} - {POLICE}
    district = {
        p.id
        for p in REF.parties
        if p.has_role("socjag-circulation") and p.district == data["location"]["district"]
    }
    assert got == members | district
    assert district - members  # wider than the original's circulation
    assert not got & SCHEMES
    for outcome in decision.deliveries:
        assert set(minimise(data, outcome.fields)) == set(data)  # nothing to remove: no source


def test_official_sensitive_sanitised_version_stays_need_to_know() -> None:
    data = socjag_sanitised("SJ-7", "e-0", classification="OFFICIAL-SENSITIVE")
    assert not delivered(decide(SOCJAG_SANITISED, data)) & DEPARTMENT_FEEDS


def test_sanitised_schema_has_no_source_or_handling_details() -> None:
    fields = REGISTRY.field_paths(SOCJAG_SANITISED)
    assert not {f for f in fields if "grade" in f or "handling" in f}


def test_a_sanitised_version_is_filed_under_the_original_item() -> None:
    original = socjag_intel("SJ-8")
    sanitised = socjag_sanitised("SJ-8", "e-0")
    assert case_ref(SOCJAG_SANITISED, sanitised) == case_ref(SOCJAG, original) == "SJ-8"


# --- the checks before routing ----------------------------------------------------------------

ACCEPTING = SocjagPolicy(accept_5x5x5=True, handling_requirements={"secure-storage": "x"})


@pytest.mark.parametrize(
    ("data", "policy", "expected"),
    [
        (socjag_legacy("L-1"), SocjagPolicy(), "does not accept"),
        (socjag_legacy("L-2"), None, "does not accept"),
        (socjag_legacy("L-3", handling=4), ACCEPTING, "handling code 4 (originating agency"),
        (socjag_legacy("L-4", handling=5), ACCEPTING, "handling code 5"),
        (socjag_intel("L-5", grading_system="5x5x5"), ACCEPTING, "without legacy_grading"),
        (
            socjag_intel("L-6", legacy_grading=socjag_legacy("x")["legacy_grading"]),
            ACCEPTING,
            "only for items graded 5x5x5",
        ),
        (
            socjag_intel("L-7", handling_code="C", requirements=["burn-after-reading"]),
            ACCEPTING,
            "burn-after-reading are not declared",
        ),
        (socjag_intel("L-8", handling_conditions={"conditions": "x", "share_with": []}),
         ACCEPTING, "use handling code C"),
        (socjag_intel("L-9", handling_code="C", handling_conditions=None), ACCEPTING,
         "without handling_conditions"),
    ],
)  # fmt: skip
def test_items_refused_before_routing(
    data: dict[str, Any], policy: SocjagPolicy | None, expected: str
) -> None:
    check = check_intel(SOCJAG, data, policy)
    assert check is not None
    assert not check.valid
    assert any(expected in problem for problem in check.problems), check.problems


def test_accepted_legacy_item_is_marked() -> None:
    check = check_intel(SOCJAG, socjag_legacy("L-10"), ACCEPTING)
    assert check is not None
    assert check.valid
    assert check.marks == ("graded 5x5x5 (legacy): source B, intelligence 2, handling 2",)


def test_other_event_types_are_not_checked() -> None:
    assert check_intel("uk.csp.pubwatch.ban.v1", {}, ACCEPTING) is None


# --- the router: refusals quarantined with the reason, marks on every audit record -----------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"))
    ensure_dev_keys(store, REF.party_ids, extra_suites=[KeySuite(s) for s in REF.crypto.suites[1:]])
    return store


def route(keys: FileKeyStore, protocol: Protocol, event_type: str, data: dict[str, Any]) -> Any:
    attrs = EventAttributes(
        id="e-1", source=wire.source_for(POLICE), type=event_type, time=FIXED, subject=None
    )
    sealed = PartyEnvelope(POLICE, store=keys).seal(
        attrs, key=b"SJ", plaintext=REGISTRY.encode(event_type, data), recipient="hub"
    )
    router = Router(
        protocol,
        registry=REGISTRY,
        envelope=PartyEnvelope("hub", store=keys),
        pseudonymiser=Pseudonymiser(b"k" * 32),
        max_event_bytes=64 * 1024,
        clock=lambda: FIXED,
    )
    return router.route(
        origin=Origin(topic=f"hub.in.{POLICE}", partition=0, offset=0),
        key=b"SJ",
        value=sealed.value,
        headers=sealed.headers,
        seen=lambda _id: None,
    )


def test_a_protocol_that_refuses_5x5x5_quarantines_the_item(keys: FileKeyStore) -> None:
    assert REF.socjag is not None
    refusing = REF.model_copy(
        update={"socjag": REF.socjag.model_copy(update={"accept_5x5x5": False})}
    )
    result = route(keys, refusing, SOCJAG, socjag_legacy("SJ-9"))
    assert result.quarantined is QuarantineReason.POLICY_REJECTED
    assert [r.decision for r in result.audit] == [AuditDecision.REJECTED]
    assert "does not accept" in (result.audit[0].reason or "")
    # nobody received it; the publisher is told
    assert [m.topic for m in result.messages] == ["hub.quarantine", f"hub.out.{POLICE}"]


def test_an_accepted_legacy_item_is_marked_on_every_audit_record(keys: FileKeyStore) -> None:
    result = route(keys, REF, SOCJAG, socjag_legacy("SJ-10"))
    assert result.quarantined is None
    assert result.delivered
    for record in result.audit:
        assert "graded 5x5x5 (legacy)" in (record.reason or "")
        if record.decision is AuditDecision.DELIVERED:
            assert "graded 5x5x5 (legacy)" in (record.condition or "")
            assert {"grading_system", "legacy_grading"} <= set(record.fields)


# --- the protocol model and its check ---------------------------------------------------------


def test_covers_field_compares_a_party_attribute_only() -> None:
    with pytest.raises(ValidationError, match="compare a 'party' attribute"):
        Condition(field="handling_conditions.requirements", covers_field="x")
    cond = Condition(party="handling", covers_field="handling_conditions.requirements")
    assert cond.event_dependent
    assert "covers every item of event.handling_conditions.requirements" in cond.describe()


def test_reference_protocol_declares_every_handling_code_it_uses() -> None:
    assert REF.socjag is not None
    used = {code for p in REF.parties for code in p.handling}
    assert used <= set(REF.socjag.handling_requirements)


def test_an_undeclared_handling_code_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = default_protocol_path().read_text()
    typo = text.replace(
        "handling: [no-onward-disclosure, no-action-without-consent]",
        "handling: [no-onward-disclosure, no-action-without-consnet]",
        1,
    )
    assert typo != text
    path = tmp_path / "protocol.yaml"
    path.write_text(typo)
    report = check_protocol(path, REGISTRY, today=dt.date(2026, 11, 23))
    found = [f for f in report.errors if f.code == "unknown-handling-requirement"]
    assert len(found) == 1
    line = typo[: typo.index("no-action-without-consnet")].count("\n") + 1
    assert found[0].location == f"{path}:{line}"
    assert "did you mean 'no-action-without-consent'" in found[0].message
