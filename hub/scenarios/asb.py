"""Scenario traffic for ASB Case Reviews (the Community Trigger): one case, seeded.

A resident (or a councillor, MP or carer acting for them) applies about a problem at a
fictional location; the coordinator records the application and acknowledges it; the four
relevant bodies of the district answer with their complaints, enough of them reported within
a month of the incident for the reference protocol's threshold to be met. The hub's sweep then
publishes its threshold decision (``hub asb sweep``, or the running hub's timer). Everything is
fictional and comes from one ``random.Random(seed)``; dates count back from ``start``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from hub.scenarios.north_worcs import ScenarioEvent
from hub.workflows.asb.events import ACK_TYPE, APPLICATION_TYPE, COMPLAINTS_TYPE

__all__ = ["COORDINATOR", "asb_case"]

COORDINATOR = "nwcsp.asb-case-review"
_DISTRICTS = {
    "bromsgrove": ("bromsgrove-dc.community-safety", "rp.bdht", "B61", "Sidemoor"),
    "wyre_forest": ("wyre-forest-dc.community-safety", "rp.community-housing", "DY10", "Greenhill"),
}
_PLACES = (
    "the parade of shops",
    "the play area off the estate road",
    "the footpath by the car park",
)
_PROBLEMS = (
    "Groups gathering late at night, shouting and damage to fences",
    "Repeated noise and intimidation from a neighbouring flat",
    "Off-road bikes ridden across the play area most evenings",
)
_KINDS = ("resident", "resident", "councillor", "mp", "carer")
_ACTIONS = ("advice given", "warning letter sent", "patrols increased", "referred to mediation")


def asb_case(*, seed: int = 7, start: dt.date) -> Iterator[ScenarioEvent]:
    """The events of one ASB Case Review application, in the order they are published."""
    rng = random.Random(f"asb/{seed}")
    district = rng.choice(sorted(_DISTRICTS))
    council, housing, outward, ward = _DISTRICTS[district]
    case = f"ASB-{start.year}-{rng.randint(1, 999):04d}"
    kind = rng.choice(_KINDS)
    applicant_ref = f"ASBAPP-{rng.randint(10000, 99999)}"
    application = {
        "case_ref": case,
        "district": district,
        "applicant_ref": applicant_ref,
        "applicant_kind": kind,
        "applicant": {"name": "Sam Fictional", "phone": "07700 900000", "email": None,
                      "address": "1 Example Close"},
        "representative": None if kind == "resident"
        else {"name": "A Representative", "role": {"councillor": "ward councillor",
              "mp": "Member of Parliament", "carer": "carer"}[kind]},
        "location": {"description": rng.choice(_PLACES), "ward": ward,
                     "postcode_district": outward},
        "problem": rng.choice(_PROBLEMS),
        "received_on": start.isoformat(),
    }  # fmt: skip
    yield ScenarioEvent(
        publisher=COORDINATOR, event_type=APPLICATION_TYPE, data=application, key=case,
        subject=applicant_ref, expect="routed", note=f"ASB Case Review application {case}",
    )  # fmt: skip
    yield ScenarioEvent(
        publisher=COORDINATOR, event_type=ACK_TYPE, key=case, subject=applicant_ref,
        data={"case_ref": case, "district": district, "acknowledged_on": start.isoformat()},
        expect="routed", note=f"ASB Case Review {case} acknowledged",
    )  # fmt: skip
    complainants = [f"CPT-{rng.randint(1000, 9999)}" for _ in range(3)]
    for n, body in enumerate(("west-mercia-police", council, "hw-icb", housing)):
        complaints = []
        for i in range(0 if body == "hw-icb" else rng.randint(1, 2)):
            incident = start - dt.timedelta(days=rng.randint(10, 150))
            complaints.append(
                {
                    "reference": f"{body.split('.')[0].upper()[:6]}-{rng.randint(100, 999)}-{i}",
                    "reported_on": (incident + dt.timedelta(days=rng.randint(0, 20))).isoformat(),
                    "incident_on": incident.isoformat(),
                    "complainant_ref": complainants[(n + i) % len(complainants)],
                    "action_taken": rng.choice(_ACTIONS),
                }
            )
        yield ScenarioEvent(
            publisher=body, event_type=COMPLAINTS_TYPE, key=case, subject=applicant_ref,
            data={"case_ref": case, "district": district, "searched_on": start.isoformat(),
                  "complaints": complaints},
            expect="routed", note=f"{body} answers for ASB Case Review {case}",
        )  # fmt: skip
