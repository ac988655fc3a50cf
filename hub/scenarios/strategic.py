"""Scenario traffic for s17A: one quarter's depersonalised submissions, seeded.

Each responsible authority of the protocol's ``strategic`` section submits its categories for
the last information period that ended before ``today`` (2026Q3 on 4 December 2026), counted
by the protocol's outward codes (police, fire, health) or wards (councils). One submitter is
left out, so ``hub strategic status`` has someone to chase and the dataset names a missing
partner. The counts are fictional, from one ``random.Random(seed)``, with small numbers among
them so the released dataset shows suppression.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from hub.policies.model import StrategicPolicy
from hub.scenarios.north_worcs import ScenarioEvent
from hub.strategic.periods import Quarter

__all__ = ["SUBMISSION_TYPE", "quarter_submissions"]

SUBMISSION_TYPE = "uk.csp.strategic.submission.v1"
#: categories counted by ward (the councils' own geography); the rest by outward code
_BY_WARD = ("council_asb", "council_environmental_crime", "council_racial_incidents")
#: the district each council's community safety team counts
_COUNCIL_DISTRICT = {
    "redditch-bc.community-safety": "redditch",
    "bromsgrove-dc.community-safety": "bromsgrove",
    "wyre-forest-dc.community-safety": "wyre_forest",
}
#: typical size of a category's count per area in a quarter
_SCALE = {
    "police_recorded_crime": 60,
    "police_incidents": 90,
    "fire_deliberate_fires": 6,
    "fire_assaults_on_staff": 1,
    "council_asb": 25,
    "council_environmental_crime": 15,
    "council_racial_incidents": 2,
    "health_assault_admissions": 8,
}


def quarter_submissions(
    policy: StrategicPolicy, *, seed: int = 7, today: dt.date, skip: str | None = "hw-icb"
) -> Iterator[ScenarioEvent]:
    """Every submitter's counts for the last ended quarter, except ``skip`` (late)."""
    rng = random.Random(f"s17a-{seed}")
    period = str(Quarter.of(today).previous)
    for submitter, categories in policy.submitters.items():
        if submitter == skip:
            continue
        for category in categories:
            counts: dict[str, int] = {}
            for district, areas in policy.districts.items():
                if category in _BY_WARD:
                    if _COUNCIL_DISTRICT.get(submitter) != district:
                        continue
                    places = list(areas.wards)
                else:
                    places = list(areas.outward_codes)
                for area in places:
                    scale = _SCALE.get(category, 10)
                    counts[area] = max(0, round(rng.gauss(scale, scale / 2)))
            yield ScenarioEvent(
                publisher=submitter,
                event_type=SUBMISSION_TYPE,
                data={
                    "submission_id": f"{submitter[:30]}-{period}-{category}".replace("_", "-")[:64],
                    "submitter": submitter,
                    "period": period,
                    "category": category,
                    "counts": [{"area": a, "count": n} for a, n in counts.items()],
                },
                key=f"S17A-{period}-{submitter}",
                subject=None,
                expect="routed",
                note=f"s17A {category} counts for {period} from {submitter}",
            )
