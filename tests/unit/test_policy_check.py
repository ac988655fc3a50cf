"""``check_protocol``: the reference protocol is clean; each unsafe mutation is caught at its line.

Mutations edit the reference YAML text and write it to tmp_path, so every expected line is
computed from the mutated text itself rather than hard-coded.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.policies.check import CheckReport, check_protocol
from hub.schemas.codec import SchemaRegistry
from hub.settings import default_protocol_path

REGISTRY = SchemaRegistry()
REF_TEXT = default_protocol_path().read_text()
TODAY = dt.date(2026, 11, 23)

MARAC_NOTES_RULE = """\
  - id: marac-departments-notes
    description: departments also get the notes (contradicts the minimal flag rule)
    events: [uk.csp.marac.flag.raised.v1]
    publishers: {parties: [marac.north-worcs]}
    recipients:
      - roles: [marac-department]
    fields: [case_ref, notes]
    lawful_basis: UK GDPR Art 6(1)(e) public task
    retention: P12M
    agreement: NW-CSP-ISA-MARAC-2025

"""


class Mutant:
    """The reference protocol with edits, written to a file; knows the line of any text."""

    def __init__(self, tmp_path: Path) -> None:
        self.text = REF_TEXT
        self.path = tmp_path / "protocol.yaml"

    def replace(self, old: str, new: str, *, after: str = "") -> Mutant:
        start = self.text.index(after) if after else 0
        i = self.text.index(old, start)
        self.text = self.text[:i] + new + self.text[i + len(old) :]
        return self

    def insert_before(self, anchor: str, new: str) -> Mutant:
        return self.replace(anchor, new + anchor)

    def where(self, needle: str, *, after: str = "") -> str:
        start = self.text.index(after) if after else 0
        line = self.text.count("\n", 0, self.text.index(needle, start)) + 1
        return f"{self.path}:{line}"

    def check(self) -> CheckReport:
        self.path.write_text(self.text)
        return check_protocol(self.path, REGISTRY, today=TODAY)


def errors(report: CheckReport) -> set[tuple[str, str]]:
    return {(f.code, f.location) for f in report.errors}


@pytest.fixture
def mutant(tmp_path: Path) -> Mutant:
    return Mutant(tmp_path)


def test_reference_protocol_passes() -> None:
    report = check_protocol(default_protocol_path(), REGISTRY, today=TODAY)
    assert report.errors == []
    assert report.warnings == []
    assert report.ok


def test_unknown_recipient_party(mutant: Mutant) -> None:
    mutant.replace("marac.north-worcs]\n    fields", "marac.north-worc]\n    fields")
    report = mutant.check()
    assert errors(report) == {
        ("unknown-party", mutant.where("- parties: [west-mercia-police, marac.north-worc]"))
    }
    assert "did you mean 'marac.north-worcs'" in report.errors[0].message
    assert report.errors[0].path == "rules[0].recipients[0].parties[1]"


def test_unknown_party_in_a_condition(mutant: Mutant) -> None:
    mutant.replace("{party: scope, in: [agency, named]}", "{party: id, in: [hwfrs, nobody]}")
    assert errors(mutant.check()) == {("unknown-party", mutant.where("{party: id, in: [hwfrs"))}


def test_unknown_party_in_a_prohibition(mutant: Mutant) -> None:
    mutant.replace("role_families: [retail-member]\n", "parties: [kingfisher]\n")
    assert errors(mutant.check()) == {("unknown-party", mutant.where("parties: [kingfisher]"))}


def test_missing_lawful_basis(mutant: Mutant) -> None:
    rule = "- id: socjag-intel-p-official"
    mutant.replace("    lawful_basis: UK GDPR Art 6(1)(e) public task\n", "", after=rule)
    assert errors(mutant.check()) == {("missing-lawful-basis", mutant.where(rule))}


def test_field_not_in_schema(mutant: Mutant) -> None:
    mutant.replace("review_date, contact]", "review_date, contact, contact.mobile]")
    report = mutant.check()
    assert errors(report) == {("unknown-field", mutant.where("contact, contact.mobile]"))}
    message = report.errors[0].message
    assert "uk.csp.marac.flag.raised.v1" in message
    assert "uk.csp.marac.flag.updated.v1" in message


def test_condition_field_not_in_schema(mutant: Mutant) -> None:
    mutant.replace("{field: incident_type, equals: theft}", "{field: incident, equals: theft}")
    assert errors(mutant.check()) == {("unknown-field", mutant.where("{field: incident,"))}


def test_equals_field_not_in_every_covered_schema(mutant: Mutant) -> None:
    # withdrawn flags have no review_date: the departments rule would compare with nothing
    mutant.replace(
        "equals_field: address.district}",
        "equals_field: review_date}",
        after="- id: marac-withdrawal-district-departments",
    )
    report = mutant.check()
    assert errors(report) == {("unknown-field", mutant.where("equals_field: review_date"))}
    assert "uk.csp.marac.flag.withdrawn.v1" in report.errors[0].message


def test_template_placeholder_not_in_schema(mutant: Mutant) -> None:
    mutant.replace('roles: ["retail-member:{scheme}"]', 'roles: ["retail-member:{schema}"]')
    assert errors(mutant.check()) == {
        ("unknown-field", mutant.where('roles: ["retail-member:{schema}"]'))
    }


def test_contradictory_overlapping_rules(mutant: Mutant) -> None:
    mutant.insert_before("  # --- SOCJAG", MARAC_NOTES_RULE)
    report = mutant.check()
    assert errors(report) == {
        ("overlapping-rules", mutant.where("- id: marac-departments-notes")),
        ("overlapping-rules", mutant.where("- id: marac-flag-district-departments")),
    }
    assert "redditch-bc.housing-repairs" in report.errors[0].message


def test_overlapping_rules_with_disjoint_publishers_are_fine(mutant: Mutant) -> None:
    notes = MARAC_NOTES_RULE.replace("parties: [marac.north-worcs]", "parties: [probation]")
    mutant.insert_before("  # --- SOCJAG", notes)
    assert errors(mutant.check()) == set()


def test_rules_with_disjoint_conditions_may_differ(mutant: Mutant) -> None:
    sensitive = "- id: socjag-intel-p-sensitive"
    mutant.replace("classification, summary]", "classification]", after=sensitive)
    assert errors(mutant.check()) == set()
    # the same rules without the classification split do overlap
    mutant.replace("equals: OFFICIAL-SENSITIVE}", "equals: OFFICIAL}", after=sensitive)
    assert errors(mutant.check()) == {
        ("overlapping-rules", mutant.where(sensitive)),
        ("overlapping-rules", mutant.where("- id: socjag-intel-p-official")),
    }


def test_non_signatory_recipient(mutant: Mutant) -> None:
    mutant.replace(
        "    name: West Mercia Police licensing unit\n",
        "    name: West Mercia Police licensing unit\n    signatory: false\n",
    )
    licensing = "- parties: [west-mercia-police.licensing]"
    assert errors(mutant.check()) == {  # the ban rule and the ban expiry rule
        ("not-signatory", mutant.where(licensing)),
        ("not-signatory", mutant.where(licensing, after="- id: pubwatch-ban-expiry-licensing")),
    }


def test_non_signatory_selected_by_role(mutant: Mutant) -> None:
    mutant.replace("    kind: retail\n", "    kind: retail\n    signatory: false\n")
    report = mutant.check()
    retail = '- roles: ["retail-member:{scheme}"]'
    publishes = 'publishers: {roles: ["retail-member:{scheme}"]}'
    own, linked = "- id: retail-exclusion-scheme-members", "- id: retail-exclusion-linked-pubs"
    assert errors(report) == {  # as recipient of a theft ban, as recipient and publisher
        ("not-signatory", mutant.where(retail)),
        ("not-signatory", mutant.where(retail, after=own)),
        ("not-signatory", mutant.where(publishes, after=own)),
        ("not-signatory", mutant.where(publishes, after=linked)),
    }
    assert "bcrp.redditch.kingfisher-retail" in report.errors[0].message


def test_unknown_event_type(mutant: Mutant) -> None:
    rule = "- id: pubwatch-ban-scheme-members"
    mutant.replace("[uk.csp.pubwatch.ban.v1]", "[uk.csp.pubwatch.bans.v1]", after=rule)
    report = mutant.check()
    assert errors(report) == {("unknown-event-type", mutant.where("uk.csp.pubwatch.bans.v1"))}
    assert "did you mean 'uk.csp.pubwatch.ban.v1'" in report.errors[0].message


def test_unknown_role(mutant: Mutant) -> None:
    mutant.replace("- roles: [marac-department]", "- roles: [marac-departments]")
    assert errors(mutant.check()) == {("unknown-role", mutant.where("[marac-departments]"))}


def test_unknown_role_family_in_template(mutant: Mutant) -> None:
    mutant.replace('["retail-member:{scheme}"]', '["retailer:{scheme}"]')
    assert errors(mutant.check()) == {("unknown-role", mutant.where('["retailer:{scheme}"]'))}


def test_unknown_role_family_in_prohibition(mutant: Mutant) -> None:
    mutant.replace("role_families: [retail-member]", "role_families: [retail-members]")
    assert errors(mutant.check()) == {("unknown-role", mutant.where("[retail-members]"))}


def test_s115_gateway_to_a_party_that_is_not_a_relevant_authority(mutant: Mutant) -> None:
    rule = "- id: pubwatch-ban-scheme-members"
    mutant.replace(
        "    lawful_basis:",
        "    gateway: Crime and Disorder Act 1998 s115\n    lawful_basis:",
        after=rule,
    )
    report = mutant.check()
    assert errors(report) == {
        (
            "not-relevant-authority",
            mutant.where('- roles: ["pubwatch-member:{scheme}"]', after=rule),
        )
    }
    assert "pubwatch.redditch.crown-inn" in report.errors[0].message


def test_duplicate_ids(mutant: Mutant) -> None:
    mutant.replace("- id: socjag-intel-p-sensitive", "- id: socjag-intel-p-official")
    mutant.replace("- id: hwfrs", "- id: probation")
    report = mutant.check()
    # reported at the second occurrence: the original probation entry
    second_party = mutant.where("- id: probation", after="name: Hereford and Worcester Fire")
    assert ("duplicate-id", second_party) in errors(report)
    second_rule = mutant.where("- id: socjag-intel-p-official", after="socjag-intel-p-official\n")
    assert ("duplicate-id", second_rule) in errors(report)


def test_duplicate_id_across_rules_and_prohibitions(mutant: Mutant) -> None:
    mutant.replace("- id: marac-never-to-schemes", "- id: marac-flag-full")
    assert errors(mutant.check()) == {
        ("duplicate-id", mutant.where("- id: marac-flag-full", after="prohibitions:"))
    }


@pytest.mark.parametrize("retention", ["12 months", "P", "PT", "P1.5Y", "p12m"])
def test_retention_must_be_an_iso_duration(mutant: Mutant, retention: str) -> None:
    mutant.replace("retention: P2Y", f"retention: {retention!r}")
    assert errors(mutant.check()) == {("bad-retention", mutant.where(f"retention: {retention!r}"))}


def test_iso_durations_pass(mutant: Mutant) -> None:
    mutant.replace("retention: P2Y", "retention: P1Y6M")
    mutant.replace("retention: P12M", "retention: P30D")
    mutant.replace("retention: P12M", "retention: PT12H")
    assert mutant.check().ok


@pytest.mark.parametrize(
    ("review", "code"),
    [("2026-11-01", "review-overdue"), ("2026-12-20", "review-due")],
)
def test_review_date_warnings(mutant: Mutant, review: str, code: str) -> None:
    mutant.replace("review_date: 2027-11-01", f"review_date: {review}")
    report = mutant.check()
    assert report.ok
    assert [(f.code, f.location) for f in report.warnings] == [
        (code, mutant.where(f"review_date: {review}"))
    ]


def test_rule_a_prohibition_cancels_is_a_warning(mutant: Mutant) -> None:
    rule = MARAC_NOTES_RULE.replace("marac-departments-notes", "marac-to-pubwatch").replace(
        "roles: [marac-department]", 'roles: ["pubwatch-member:redditch"]'
    )
    mutant.insert_before("  # --- SOCJAG", rule)
    report = mutant.check()
    assert report.ok
    assert [(f.code, f.location) for f in report.warnings] == [
        ("prohibited-rule", mutant.where("- id: marac-to-pubwatch"))
    ]
    assert "marac-never-to-schemes" in report.warnings[0].message


def test_conditional_prohibition_does_not_warn(mutant: Mutant) -> None:
    # night-time bans are withheld from retail, but theft bans are not: no full cancellation
    mutant.replace("{field: incident_type, equals: theft}", "{field: incident_type, in: [theft]}")
    assert mutant.check().warnings == []
    mutant.replace("in: [theft]}", "equals: violence}")
    report = mutant.check()
    assert [f.code for f in report.warnings] == ["prohibited-rule"]


def test_yaml_syntax_error_is_a_finding(mutant: Mutant) -> None:
    mutant.replace(
        "    fields: &flag_only [case_ref, subject_ref",
        "    fields: &flag_only [case_ref, {subject_ref",
    )
    report = mutant.check()
    assert [f.code for f in report.errors] == ["yaml-syntax"]
    assert report.errors[0].location.startswith(f"{mutant.path}:")


def test_model_error_is_a_finding_at_its_line(mutant: Mutant) -> None:
    mutant.replace("    purpose: Licensing oversight", "    porpose: Licensing oversight")
    mutant.replace("kind: retail", "kind: retail\n    scope: everywhere")
    report = mutant.check()
    assert ("invalid", mutant.where("porpose:")) in errors(report)
    assert ("invalid", mutant.where("scope: everywhere")) in errors(report)


def test_party_condition_at_rule_level_never_holds(mutant: Mutant) -> None:
    mutant.replace(
        "      - {field: handling_code, equals: P}\n",
        "      - {field: handling_code, equals: P}\n      - {party: scope, equals: agency}\n",
    )
    assert errors(mutant.check()) == {
        ("party-condition-out-of-place", mutant.where("{party: scope, equals: agency}"))
    }


def test_not_a_mapping_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    assert [f.code for f in check_protocol(path, REGISTRY).errors] == ["invalid"]


def test_missing_file_is_a_finding(tmp_path: Path) -> None:
    report = check_protocol(tmp_path / "absent.yaml", REGISTRY)
    assert [f.code for f in report.errors] == ["unreadable"]
    assert not report.ok


def test_lines_format(mutant: Mutant) -> None:
    mutant.replace("review_date: 2027-11-01", "review_date: 2026-12-01")
    mutant.replace("retention: P2Y", "retention: two years")
    lines = mutant.check().lines()
    assert lines == [
        f"{mutant.where('two years')}: error: bad-retention: retention: expected an ISO 8601 "
        "duration such as P12M, P2Y or P30D, got 'two years'",
        f"{mutant.where('2026-12-01')}: warning: review-due: review date 2026-12-01 is within "
        "30 days",
    ]


def test_an_ig_role_nobody_holds_is_an_error(mutant: Mutant) -> None:
    mutant.replace("  ig_role: ig-officer\n", "  ig_role: ig-lead\n")
    report = mutant.check()
    assert errors(report) == {("ig-role-unfilled", mutant.where("  ig_role: ig-lead"))}
    assert [f.code for f in report.warnings] == ["ig-alerts-undelivered"]


def test_the_hubs_own_agreement_alerts_need_no_agreement(mutant: Mutant) -> None:
    # a rule for the hub's alerts relies on no agreement (it must not lapse with one) ...
    assert mutant.check().warnings == []
    # ... but any other rule without one is still flagged
    mutant.replace("    agreement: REDDITCH-BCRP-DSA-2025\n", "")
    assert [f.code for f in mutant.check().warnings] == ["no-agreement"]
