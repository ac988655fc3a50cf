"""Payload factories for tests: valid events with the fields a test cares about overridden."""

from __future__ import annotations

import copy
from typing import Any

MARAC_RAISED = "uk.csp.marac.flag.raised.v1"
MARAC_UPDATED = "uk.csp.marac.flag.updated.v1"
MARAC_WITHDRAWN = "uk.csp.marac.flag.withdrawn.v1"
SOCJAG = "uk.csp.socjag.intel.v1"
BAN = "uk.csp.pubwatch.ban.v1"

_TOWNS = {
    "redditch": ("Redditch", "B97 4HJ"),
    "bromsgrove": ("Bromsgrove", "B60 1AA"),
    "wyre_forest": ("Kidderminster", "DY10 1AB"),
    "worcester": ("Worcester", "WR1 2AA"),
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
            }
            if handling_code == "C"
            else None
        ),
        "classification": classification,
        "summary": "Suspected cuckooing of a flat by a county line.",
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
