"""Payload factories for tests: valid events with the fields a test cares about overridden."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

MARAC_RAISED = "uk.csp.marac.flag.raised.v1"
MARAC_UPDATED = "uk.csp.marac.flag.updated.v1"
MARAC_WITHDRAWN = "uk.csp.marac.flag.withdrawn.v1"
SOCJAG = "uk.csp.socjag.intel.v1"
SOCJAG_SANITISED = "uk.csp.socjag.intel.sanitised.v1"
BAN = "uk.csp.pubwatch.ban.v1"
BAN_UPDATED = "uk.csp.pubwatch.ban.updated.v1"
BAN_EXPIRED = "uk.csp.pubwatch.ban.expired.v1"
RETAIL_EXCLUSION = "uk.csp.retail.exclusion.v1"
RETAIL_EXPIRED = "uk.csp.retail.exclusion.expired.v1"
AGREEMENT_ALERT = "uk.csp.hub.agreement.alert.v1"

_TOWNS = {
    "redditch": ("Redditch", "B97 4HJ"),
    "bromsgrove": ("Bromsgrove", "B60 1AA"),
    "wyre_forest": ("Kidderminster", "DY10 1AB"),
    "worcester": ("Worcester", "WR1 2AA"),
    "wychavon": ("Evesham", "WR11 4AA"),
    "malvern_hills": ("Malvern", "WR14 1AA"),
}


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def marac_flag(case_ref: str, *, district: str = "redditch", **overrides: Any) -> dict[str, Any]:
    town, postcode = _TOWNS[district]
    base = {
        "case_ref": case_ref,
        "subject_ref": f"SUBJ-{case_ref[-6:]}",
        "address": {
            "line1": "14 Church Green East",
            "town": town,
            "postcode": postcode,
            "district": district,
        },
        "risk_level": "high",
        "referral_reason": "dash",
        "dash_score": 17,
        "marac_date": "2026-11-19",
        "review_date": "2027-05-19",
        "contact": {
            "name": "IDVA duty desk",
            "phone": "01527 000100",
            "email": "idva@example.org.uk",
        },
        "markers": ["property", "person"],
        "notes": "Perpetrator damaged front door lock; victim fears return.",
    }
    return _merge(base, overrides)


def marac_withdrawn(case_ref: str, *, district: str = "redditch") -> dict[str, Any]:
    flag = marac_flag(case_ref, district=district)
    return {
        "case_ref": case_ref,
        "subject_ref": flag["subject_ref"],
        "address": flag["address"],
        "withdrawn_on": "2027-01-10",
        "reason": "risk_reduced",
        "contact": flag["contact"],
        "notes": "Closed at review.",
    }


def socjag_intel(
    intel_ref: str,
    *,
    handling_code: str = "P",
    classification: str = "OFFICIAL",
    share_with: list[str] | None = None,
    requirements: list[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    base = {
        "intel_ref": intel_ref,
        "subject_refs": [f"SUBJ-{intel_ref[-6:]}"],
        "category": "county_lines",
        "location": {"area": "Winyates", "district": "redditch"},
        "source_grade": 2,
        "intel_grade": "B",
        "handling_code": handling_code,
        "handling_conditions": (
            {
                "conditions": "Not to be disclosed further; no action without police consent.",
                "share_with": share_with or [],
                "requirements": requirements or [],
            }
            if handling_code == "C"
            else None
        ),
        "classification": classification,
        "summary": "Suspected cuckooing of a flat by a county line.",
    }
    return _merge(base, overrides)


def socjag_legacy(intel_ref: str, *, handling: int = 2, **overrides: Any) -> dict[str, Any]:
    """An older item graded 5x5x5 (source B, intelligence 2), with its 3x5x2 reading."""
    legacy = {"source_evaluation": "B", "intelligence_evaluation": 2, "handling_code": handling}
    return socjag_intel(intel_ref, grading_system="5x5x5", legacy_grading=legacy, **overrides)


def socjag_sanitised(
    intel_ref: str, sanitised_from: str, *, classification: str = "OFFICIAL", **overrides: Any
) -> dict[str, Any]:
    """The sanitised version of ``socjag_intel(intel_ref)``: no grades, no handling details."""
    original = socjag_intel(intel_ref)
    base = {
        "intel_ref": intel_ref,
        "sanitised_from": sanitised_from,
        "subject_refs": original["subject_refs"],
        "category": original["category"],
        "location": original["location"],
        "classification": classification,
        "summary": "A flat in Winyates is believed to be used by a county line.",
    }
    return _merge(base, overrides)


def pubwatch_ban(
    ban_ref: str,
    *,
    incident_type: str = "violence",
    decided_by: str = "scheme_board",
    **overrides: Any,
) -> dict[str, Any]:
    base = {
        "ban_ref": ban_ref,
        "scheme": "redditch",
        "subject": {
            "name": "Jordan Example",
            "date_of_birth": "1994-03-02",
            "photo_ref": "photo:pw-redditch-0042",
        },
        "premises": "The Crown Inn, Redditch",
        "incident_type": incident_type,
        "ban_start": "2026-11-20",
        "ban_end": "2027-11-19",
        "decided_by": decided_by,
    }
    return _merge(base, overrides)


def retail_exclusion(
    ban_ref: str, *, incident_type: str = "theft", **overrides: Any
) -> dict[str, Any]:
    """A retail crime partnership's exclusion of a shoplifter, decided by its board."""
    base = {
        "ban_ref": ban_ref,
        "scheme": "redditch",
        "subject": {
            "name": "Casey Example",
            "date_of_birth": "1998-07-14",
            "photo_ref": "photo:bcrp-redditch-0007",
        },
        "premises": "Kingfisher Centre, Redditch",
        "incident_type": incident_type,
        "incident_date": "2026-11-18",
        "ban_start": "2026-11-20",
        "ban_end": "2027-11-19",
        "decided_by": "scheme_board",
    }
    return _merge(base, overrides)


def retail_exclusion_expired(ban_ref: str, **overrides: Any) -> dict[str, Any]:
    """The hub's notice at the end of ``retail_exclusion(ban_ref)``."""
    base = {
        "ban_ref": ban_ref,
        "scheme": "redditch",
        "ban_start": "2026-11-20",
        "ban_end": "2027-11-19",
        "ended_on": "2027-11-20",
        "photo_ref": "photo:bcrp-redditch-0007",
        "instruction": "The exclusion has ended: remove it and delete the photo.",
    }
    return _merge(base, overrides)


def agreement_alert(agreement_id: str, **overrides: Any) -> dict[str, Any]:
    """The hub's alert to the IG role: ``agreement_id`` is due for review in 7 days."""
    base = {
        "alert_id": "0f8d2c1e-7b6a-5d4c-9e3f-2a1b0c9d8e7f",
        "stage": "review_due",
        "agreement_id": agreement_id,
        "title": "North Worcestershire MARAC information sharing agreement",
        "review_date": "2027-09-30",
        "suspended_from": "2027-10-01",
        "days_left": 7,
        "rules": ["marac-flag-full", "marac-flag-district-departments"],
        "protocol_id": "north-worcestershire-csp",
        "detail": "Review the agreement before 2027-10-01.",
    }
    return _merge(base, overrides)


def pubwatch_ban_updated(
    ban_ref: str, *, review: str = "early_review", **overrides: Any
) -> dict[str, Any]:
    """An early review of ``pubwatch_ban(ban_ref)`` after six months: the ban is shortened."""
    base = {
        "ban_ref": ban_ref,
        "scheme": "redditch",
        "review": review,
        "reviewed_on": "2027-05-21",
        "ban_start": "2026-11-20",
        "ban_end": "2027-08-19",
        "previous_ban_end": "2027-11-19",
        "reason": "No incident since the ban started; the board shortened it at review.",
        "decided_by": "scheme_board",
    }
    return _merge(base, overrides)


def pubwatch_ban_expired(ban_ref: str, **overrides: Any) -> dict[str, Any]:
    """The hub's notice at the end of ``pubwatch_ban(ban_ref)``."""
    base = {
        "ban_ref": ban_ref,
        "scheme": "redditch",
        "ban_end": "2027-11-19",
        "ended_on": "2027-11-20",
        "photo_ref": "photo:pw-redditch-0042",
        "instruction": "The ban has ended: remove it and delete the photo.",
    }
    return _merge(base, overrides)


MARAC_REVIEWED = "uk.csp.marac.flag.reviewed.v1"
MARAC_EXPIRED = "uk.csp.marac.flag.expired.v1"
MARAC_OBSERVATION = "uk.csp.marac.observation.v1"
MARAC_REFERRED = "uk.csp.marac.observation.referred.v1"
MARAC_ALERT = "uk.csp.marac.alert.v1"


def marac_reviewed(
    case_ref: str, *, district: str = "redditch", **overrides: Any
) -> dict[str, Any]:
    flag = marac_flag(case_ref, district=district)
    base = {
        "case_ref": case_ref,
        "subject_ref": flag["subject_ref"],
        "address": flag["address"],
        "reviewed_on": "2027-05-19",
        "outcome": "reconfirmed",
        "risk_level": "high",
        "review_date": "2027-11-19",
        "marac_date": "2027-05-19",
        "contact": flag["contact"],
        "markers": ["property", "person"],
        "notes": "Reconfirmed at the May MARAC.",
    }
    return _merge(base, overrides)


MARAC_ACCESS = "uk.csp.marac.access.v1"


def marac_access(case_ref: str, **overrides: Any) -> dict[str, Any]:
    """An urgent-care setting says it viewed ``marac_flag(case_ref)`` (CP-IS access notice)."""
    base = {
        "case_ref": case_ref,
        "subject_ref": marac_flag(case_ref)["subject_ref"],
        "viewed_event_id": "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10",
        "viewed_at": "2026-11-20T23:41:05.500000Z",
        "setting": "Emergency department, Alexandra Hospital, Redditch",
        "viewed_by": "ED triage nurse",
    }
    return _merge(base, overrides)


def marac_expired(case_ref: str) -> dict[str, Any]:
    flag = marac_flag(case_ref)
    return {
        "case_ref": case_ref,
        "subject_ref": flag["subject_ref"],
        "expired_on": "2027-06-03",
        "review_date": "2027-05-19",
        "grace": "P14D",
        "reason": "not reconfirmed within P14D of its review date 2027-05-19: remove the flag",
        "contact": flag["contact"],
    }


def marac_observation(case_ref: str, observation_id: str = "OBS-0001") -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "case_ref": case_ref,
        "observed_on": "2026-11-24",
        "category": "property_damage",
        "summary": "Repair request: front-door lock damaged, tenant says by ex-partner.",
        "reported_by": {
            "name": "Repairs desk",
            "phone": "01527 000300",
            "email": "repairs@example.gov.uk",
        },
    }


def marac_referred(
    case_ref: str, observation_id: str = "OBS-0001", *, basis: str = "would_prejudice_protection"
) -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "case_ref": case_ref,
        "category": "property_damage",
        "summary": "Front-door lock damaged by the perpetrator; victim at risk.",
        "consent": {
            "basis": basis,
            "recorded_by": "MARAC coordinator",
            "recorded_on": "2026-11-24",
            "rationale": "Asking would alert the perpetrator, who has a key.",
        },
        "contact": {
            "name": "MARAC coordinator",
            "phone": "01527 000200",
            "email": "marac@example.gov.uk",
        },
    }


def marac_alert(case_ref: str, kind: str = "ack_overdue") -> dict[str, Any]:
    return {
        "alert_id": "5d1e0b7a-1c2d-5e3f-8a9b-0c1d2e3f4a5b",
        "kind": kind,
        "case_ref": case_ref,
        "subject_ref": f"SUBJ-{case_ref[-6:]}",
        "parties": ["redditch-bc.housing-repairs"],
        "due_on": "2026-11-25",
        "detail": "1 department(s) have not acknowledged the flag within P2D",
    }


STRATEGIC_SUBMISSION = "uk.csp.strategic.submission.v1"
STRATEGIC_DATASET = "uk.csp.strategic.dataset.v1"
STRATEGIC_ALERT = "uk.csp.strategic.alert.v1"


def strategic_submission(
    submitter: str = "west-mercia-police",
    *,
    period: str = "2026Q3",
    category: str = "police_recorded_crime",
    counts: dict[str, int] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A s17A submission: depersonalised counts by outward code or ward for one quarter."""
    counts = {"B97": 12, "B98": 7, "E05007870": 3} if counts is None else counts
    base = {
        "submission_id": f"{submitter[:20]}-{period}-{category[:30]}".replace("_", "-"),
        "submitter": submitter,
        "period": period,
        "category": category,
        "counts": [{"area": area, "count": n} for area, n in counts.items()],
    }
    return _merge(base, overrides)


def strategic_dataset(period: str = "2026Q3", **overrides: Any) -> dict[str, Any]:
    """The hub's release of one period's dataset to the analysts (one suppressed cell)."""
    base = {
        "release_id": f"S17A-{period}-0123456789ab",
        "period": period,
        "threshold": 5,
        "sha256": "0" * 64,
        "built_at": "2027-01-05T09:00:00Z",
        "submitters": ["west-mercia-police"],
        "missing": ["hwfrs"],
        "cells": [
            {
                "district": "redditch",
                "level": "outward_code",
                "area": "B97",
                "category": "police_recorded_crime",
                "count": 12,
            },
            {
                "district": "redditch",
                "level": "outward_code",
                "area": "B98",
                "category": "police_recorded_crime",
                "count": None,
            },
            {
                "district": "redditch",
                "level": "outward_code",
                "area": "TOTAL",
                "category": "total",
                "count": 19,
            },
        ],
    }
    return _merge(base, overrides)


def strategic_alert(submitter: str = "hwfrs", **overrides: Any) -> dict[str, Any]:
    """The hub's alert: ``submitter`` has not submitted 2026Q2 by the end of 2026Q3."""
    base = {
        "alert_id": "S17A-late-hwfrs-2026Q2",
        "kind": "submission_late",
        "submitter": submitter,
        "period": "2026Q2",
        "categories": ["fire_deliberate_fires"],
        "due_on": "2026-09-30",
        "detail": "Submit the 2026Q2 counts now: they were due by 2026-09-30.",
    }
    return _merge(base, overrides)


ASB_APPLICATION = "uk.csp.asb.review.application.v1"
ASB_ACKNOWLEDGED = "uk.csp.asb.review.acknowledged.v1"
ASB_COMPLAINTS = "uk.csp.asb.review.complaints.v1"
ASB_THRESHOLD = "uk.csp.asb.review.threshold.v1"
ASB_OUTCOME = "uk.csp.asb.review.outcome.v1"
ASB_ACTION = "uk.csp.asb.review.action.v1"
ASB_APPEAL = "uk.csp.asb.review.appeal.v1"
ASB_ALERT = "uk.csp.asb.review.alert.v1"
#: the applicant's name in ASB applications: tests look for it where it must not be
ASB_APPLICANT_NAME = "Jordan Example-Applicant"


def asb_application(
    case_ref: str, *, district: str = "bromsgrove", **overrides: Any
) -> dict[str, Any]:
    """An ASB Case Review application recorded by the coordinator."""
    base: dict[str, Any] = {
        "case_ref": case_ref,
        "district": district,
        "applicant_ref": f"APP-{case_ref}",
        "applicant_kind": "resident",
        "applicant": {
            "name": ASB_APPLICANT_NAME,
            "phone": "07700 900123",
            "email": None,
            "address": "12 Example Road",
        },
        "representative": None,
        "location": {
            "description": "Sandy Lane shops and the footpath behind them",
            "ward": "Sidemoor",
            "postcode_district": "B61",
        },
        "problem": "Groups gathering at night, noise and damage to fences",
        "received_on": "2026-04-01",
    }
    return _merge(base, overrides)


def asb_complaints(
    case_ref: str,
    complaints: Sequence[tuple[str, str, str, str]] = (),
    *,
    district: str = "bromsgrove",
    searched_on: str = "2026-04-08",
) -> dict[str, Any]:
    """A body's answer: (reference, reported_on, incident_on, complainant_ref) per complaint."""
    return {
        "case_ref": case_ref,
        "district": district,
        "searched_on": searched_on,
        "complaints": [
            {
                "reference": ref,
                "reported_on": reported,
                "incident_on": incident,
                "complainant_ref": who,
                "action_taken": "advice given, patrols increased",
            }
            for ref, reported, incident, who in complaints
        ],
    }


def asb_outcome(case_ref: str, *, district: str = "bromsgrove", **overrides: Any) -> dict[str, Any]:
    """A case review's outcome with one recommendation for the police."""
    base: dict[str, Any] = {
        "case_ref": case_ref,
        "district": district,
        "outcome": "actions_recommended",
        "decided_on": "2026-04-28",
        "meeting_on": "2026-04-28",
        "appeal_ref": None,
        "summary": "Agreed actions to stop the gatherings",
        "recommendations": [
            {
                "action_ref": "ACT-1",
                "body": "west-mercia-police",
                "action": "Evening patrols at the shops for eight weeks",
                "due_on": "2026-06-30",
            }
        ],
    }
    return _merge(base, overrides)


def asb_threshold(case_ref: str, *, met: bool = True, **overrides: Any) -> dict[str, Any]:
    """The hub's threshold decision."""
    base: dict[str, Any] = {
        "case_ref": case_ref,
        "district": "bromsgrove",
        "met": met,
        "met_by": "complaints" if met else None,
        "received_on": "2026-04-01",
        "decided_on": "2026-04-20",
        "complaints_considered": 3,
        "qualifying_complaints": 3 if met else 1,
        "distinct_complainants": 2,
        "bodies_answered": ["west-mercia-police"],
        "reasons": ["threshold met"] if met else ["threshold not met"],
    }
    return _merge(base, overrides)


def asb_action(case_ref: str, status: str = "acknowledged", **overrides: Any) -> dict[str, Any]:
    """A body's acknowledgement or completion of a recommended action."""
    base: dict[str, Any] = {
        "case_ref": case_ref,
        "district": "bromsgrove",
        "action_ref": "ACT-1",
        "status": status,
        "on": "2026-04-30",
        "note": None,
    }
    return _merge(base, overrides)


def asb_appeal(case_ref: str, **overrides: Any) -> dict[str, Any]:
    """The applicant's appeal to the PCC."""
    base: dict[str, Any] = {
        "case_ref": case_ref,
        "district": "bromsgrove",
        "appeal_ref": f"AP-{case_ref}",
        "lodged_on": "2026-05-11",
        "appealed_to": "the Police and Crime Commissioner for West Mercia",
        "against": "review_outcome",
    }
    return _merge(base, overrides)


def asb_alert(case_ref: str, parties: list[str], kind: str = "answer_overdue") -> dict[str, Any]:
    """The hub's escalation of a missed ASB Case Review timescale."""
    return {
        "alert_id": f"ASB-ALERT-{case_ref}",
        "kind": kind,
        "case_ref": case_ref,
        "district": "bromsgrove",
        "parties": parties,
        "due_on": "2026-04-17",
        "detail": "an answer is overdue",
    }


def transfer_proof(**overrides: Any) -> dict[str, Any]:
    """A transfer proof's body (``uk.csp.marac.transfer.proof.v1``), as a hub publishes it."""
    return {
        "transfer_event_id": "e-1",
        "sender": "nwcsp-hub",
        "audit_record": "r-1",
        "record": "{}",
        "leaf_index": 0,
        "tree_size": 1,
        "inclusion_proof": [],
        "checkpoint": "x",
        **overrides,
    }
